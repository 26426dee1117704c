//! Reader tests: the three MedFMC list formats with awkward but valid files (spaces in
//! names, CRLF, blank lines, trailing blanks, BOM), every malformed-line error with its
//! exact `file:line:` prefix, and the CSV, image-folder and config layouts.

mod common;

use std::path::Path;

use common::Scratch;
use ept_data::csv::{CsvOptions, parse_csv, render_csv};
use ept_data::folder::read_image_folder;
use ept_data::list::{parse_list, read_list, render_list};
use ept_data::{DataError, DataSource, LabelSyntax, ListFormat, ListKind, Target, Task};

const CHEST: ListFormat = ListFormat {
    syntax: LabelSyntax::CommaList,
    num_classes: 19,
};
const ENDO: ListFormat = ListFormat {
    syntax: LabelSyntax::SpaceList,
    num_classes: 4,
};
const COLON: ListFormat = ListFormat {
    syntax: LabelSyntax::ClassIndex,
    num_classes: 2,
};

fn parse(text: &[u8], format: &ListFormat) -> Result<Vec<ept_data::Sample>, DataError> {
    parse_list(
        text,
        Path::new("lists/train.txt"),
        Path::new("imgs"),
        format,
        false,
    )
}

fn err_text(text: &[u8], format: &ListFormat) -> String {
    match parse(text, format) {
        Ok(s) => panic!("expected an error, parsed {} samples", s.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn awkward_colon_list_parses() {
    // MedFMC ColonPath names contain spaces; CRLF, blank lines, tabs and trailing blanks.
    let text = b"\xEF\xBB\xBF1903326001_2019-06-11 12_07_06-lv1-3173p0008.png 0\r\n\r\n   \r\nslide two  p0001.png\t1   \r\nlast.png 1";
    let s = parse(text, &COLON).unwrap();
    let ids: Vec<&str> = s.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1903326001_2019-06-11 12_07_06-lv1-3173p0008.png",
            "slide two  p0001.png",
            "last.png"
        ]
    );
    assert_eq!(s[1].target, Target::Single(1));
    assert_eq!(s[0].path, Path::new("imgs").join(&s[0].id));
    assert!(s.iter().all(|s| s.group.is_none()));
}

#[test]
fn awkward_endo_and_chest_lists_parse() {
    let endo = parse(
        b"13333_2021.12_0006 55977222.png 1 0 0 1 \r\n\n13333_x.png 0\t0 1 0\r\n",
        &ENDO,
    )
    .unwrap();
    assert_eq!(endo.len(), 2);
    assert_eq!(endo[0].id, "13333_2021.12_0006 55977222.png");
    assert_eq!(endo[0].target, Target::Multi(vec![true, false, false, true]));
    assert_eq!(endo[1].target, Target::Multi(vec![false, false, true, false]));

    let labels = "1,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0";
    let text = format!("DX.1.2 with space.png {labels}  \r\n\r\n");
    let chest = parse(text.as_bytes(), &CHEST).unwrap();
    assert_eq!(chest.len(), 1);
    assert_eq!(chest[0].id, "DX.1.2 with space.png");
    assert_eq!(chest[0].target.classes(), vec![0, 4]);
}

#[test]
fn every_malformed_line_names_file_and_line() {
    let cases: Vec<(&[u8], ListFormat, &str)> = vec![
        (
            b"ok.png 1 0 0 1\nbad.png 1 0 0\n",
            ENDO,
            "lists/train.txt:2: wrong number of labels: expected 4, found 3",
        ),
        (
            b"ok.png 1 0 0 1\n\nbad.png 1 0 0 1 1\n",
            ENDO,
            "lists/train.txt:3: wrong number of labels: expected 4, found 5",
        ),
        (
            b"a b.png 1 x 0 1\n",
            ENDO,
            "lists/train.txt:1: label 'x' is not a number",
        ),
        (
            b"\r\n\r\na.png 1 0 2 1\r\n",
            ENDO,
            "lists/train.txt:3: label 2 out of range: expected 0 or 1",
        ),
        (
            b"a.png\n",
            ENDO,
            "lists/train.txt:1: missing labels: expected `<file name> <4 space-separated 0/1 flags>`",
        ),
        (
            b"a.png 0\nb.png 2\n",
            COLON,
            "lists/train.txt:2: label 2 out of range: expected 0..=1",
        ),
        (
            b"a.png -1\n",
            COLON,
            "lists/train.txt:1: label -1 out of range: expected 0..=1",
        ),
        (
            b"a.png one\n",
            COLON,
            "lists/train.txt:1: label 'one' is not a number",
        ),
        (
            b"x.png 0\ny z.png\n",
            COLON,
            "lists/train.txt:2: missing labels: expected `<file name> <class index 0..1>`",
        ),
        (
            b"a.png 0,1,0\n",
            CHEST,
            "lists/train.txt:1: wrong number of labels: expected 19, found 3",
        ),
        (
            b"0,1,0\n",
            CHEST,
            "lists/train.txt:1: missing file name before the labels",
        ),
        (
            b"ok.png 1\n\xff\xfe.png 0\n",
            COLON,
            "lists/train.txt:2: line is not valid UTF-8",
        ),
    ];
    for (text, format, want) in cases {
        assert_eq!(err_text(text, &format), want);
    }
    let chest_bad = format!("a.png {}\n", ["0"; 18].join(",") + ",q");
    assert_eq!(
        err_text(chest_bad.as_bytes(), &CHEST),
        "lists/train.txt:1: label 'q' is not a number"
    );
    let chest_range = format!("a.png {}\n", ["0"; 18].join(",") + ",3");
    assert_eq!(
        err_text(chest_range.as_bytes(), &CHEST),
        "lists/train.txt:1: label 3 out of range: expected 0 or 1"
    );
}

#[test]
fn unknown_image_is_reported_when_checking_files() {
    let dir = Scratch::new("unknown-image");
    dir.png("images/a b.png", 4, 4);
    let list = dir.write("train.txt", b"a b.png 1\r\nmissing.png 0\r\n");
    let images = dir.path().join("images");
    let err = read_list(&list, &images, &COLON, true).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: unknown image 'missing.png': no such file in {}",
            list.display(),
            images.display()
        )
    );
    // Without the check the same list reads fine.
    assert_eq!(read_list(&list, &images, &COLON, false).unwrap().len(), 2);
    // An entry naming a folder says so (it exists, so "no such file" would mislead).
    std::fs::create_dir_all(images.join("scans")).unwrap();
    let list = dir.write("folder.txt", b"a b.png 1\nscans 0\n");
    let err = read_list(&list, &images, &COLON, true).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: '{}' is a folder, not a file",
            list.display(),
            images.join("scans").display()
        )
    );
    // A missing list file is an I/O error naming it.
    let e = read_list(&dir.path().join("nope.txt"), &images, &COLON, false).unwrap_err();
    assert!(
        matches!(e, DataError::Io { .. }) && e.to_string().contains("nope.txt"),
        "{e}"
    );
}

#[test]
fn lists_round_trip_through_the_writer() {
    for (format, text) in [
        (COLON, "a b.png 1\nc.png 0\n"),
        (ENDO, "a b.png 1 0 0 1\nc.png 0 0 0 0\n"),
        (CHEST, "x y.png 1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1\n"),
    ] {
        let samples = parse(text.as_bytes(), &format).unwrap();
        assert_eq!(render_list(&samples, &format).unwrap(), text);
    }
}

#[test]
fn csv_layout_with_header_group_quotes_and_errors() {
    let opts = CsvOptions {
        multi_label: false,
        num_classes: None,
        check_images: false,
    };
    let text = b"path,label,group\r\n\"a,b.png\",1,p1\r\nc d.png,0,p2\r\n\r\ne.png,2,p1\r\n";
    let (s, n) = parse_csv(text, Path::new("d.csv"), Path::new("root"), &opts).unwrap();
    assert_eq!(n, 3, "inferred from the largest index");
    assert_eq!(s[0].id, "a,b.png");
    assert_eq!(s[0].group.as_deref(), Some("p1"));
    assert_eq!(s[1].path, Path::new("root").join("c d.png"));
    // Round trip.
    let (again, _) = parse_csv(
        render_csv(&s).unwrap().as_bytes(),
        Path::new("d.csv"),
        Path::new("root"),
        &opts,
    )
    .unwrap();
    assert_eq!(again, s);

    // Without a header: two columns, the path may contain commas.
    let (s, _) = parse_csv(b"x,y.png,1\n", Path::new("d.csv"), Path::new("r"), &opts).unwrap();
    assert_eq!((s[0].id.as_str(), &s[0].target), ("x,y.png", &Target::Single(1)));

    let multi = CsvOptions {
        multi_label: true,
        num_classes: Some(3),
        check_images: false,
    };
    let (s, _) = parse_csv(
        b"path,label\na.png,1 0 1\nb.png,0;1;0\n",
        Path::new("m.csv"),
        Path::new("r"),
        &multi,
    )
    .unwrap();
    assert_eq!(s[1].target, Target::Multi(vec![false, true, false]));

    let err = |text: &[u8], o: &CsvOptions| {
        parse_csv(text, Path::new("m.csv"), Path::new("r"), o)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(b"path,label\na.png,1 0\n", &multi),
        "m.csv:2: wrong number of labels: expected 3, found 2"
    );
    assert_eq!(
        err(b"a.png,1 0 7\n", &multi),
        "m.csv:1: label 7 out of range: expected 0 or 1"
    );
    assert_eq!(err(b"a.png,x\n", &opts), "m.csv:1: label 'x' is not a number");
    assert_eq!(
        err(b"justpath\n", &opts),
        "m.csv:1: wrong number of columns: expected 2, found 1"
    );
    assert_eq!(
        err(b"path,label,group\na.png,1,\n", &opts),
        "m.csv:2: empty group column"
    );
    let fixed = CsvOptions {
        num_classes: Some(2),
        ..opts.clone()
    };
    assert_eq!(
        err(b"a.png,2\n", &fixed),
        "m.csv:1: label 2 out of range: expected 0..=1"
    );
    let none = CsvOptions {
        num_classes: Some(0),
        ..opts.clone()
    };
    assert_eq!(
        err(b"a.png,1\n", &none),
        "m.csv: num_classes = 0 must be in 1..=100000"
    );
    let huge = CsvOptions {
        num_classes: Some(usize::MAX),
        ..opts.clone()
    };
    assert!(err(b"a.png,1\n", &huge).contains("must be in 1..=100000"));
    assert_eq!(
        err(b"a.png,4000000000\n", &opts),
        "m.csv:1: label 4000000000 out of range: expected a class index in 0..100000"
    );
}

#[test]
fn image_folder_layout_sorts_classes_and_files() {
    let dir = Scratch::new("folder");
    dir.png("root/normal/b.png", 2, 2);
    dir.png("root/normal/sub/a.PNG", 2, 2);
    dir.png("root/adenoma/z z.png", 2, 2);
    dir.write("root/adenoma/notes.txt", b"ignored");
    let (s, names) = read_image_folder(&dir.path().join("root")).unwrap();
    assert_eq!(names, ["adenoma", "normal"]);
    let got: Vec<(&str, &Target)> = s.iter().map(|s| (s.id.as_str(), &s.target)).collect();
    assert_eq!(
        got,
        [
            ("adenoma/z z.png", &Target::Single(0)),
            ("normal/b.png", &Target::Single(1)),
            ("normal/sub/a.PNG", &Target::Single(1)),
        ]
    );
    dir.write("root/empty/readme.md", b"");
    let e = read_image_folder(&dir.path().join("root"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("class folder 'empty' has no images"), "{e}");
    let e = read_image_folder(&dir.path().join("root/adenoma"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no class subfolders"), "{e}");
}

#[test]
fn data_source_config_rejects_unknown_keys_and_loads() {
    let dir = Scratch::new("source");
    dir.png("images/a.png", 4, 4);
    dir.png("images/b c.png", 4, 4);
    dir.write("train.txt", b"a.png 1 0 0 1\r\nb c.png 0 1 0 0\r\n");
    let json = r#"{"kind": "list", "list": "train.txt", "images": "images", "format": "endo"}"#;
    let src: DataSource = serde_json::from_str(json).unwrap();
    let ds = src.relative_to(dir.path()).load().unwrap();
    assert_eq!(
        (ds.samples.len(), ds.num_classes, ds.task),
        (2, 4, Task::MultiLabel)
    );
    assert_eq!(ds.default_grouping, ept_data::Grouping::Prefix(18));

    let typo = r#"{"kind": "list", "list": "t.txt", "images": "i", "format": "endo", "num_clases": 3}"#;
    let e = serde_json::from_str::<DataSource>(typo).unwrap_err().to_string();
    assert!(e.contains("num_clases"), "{e}");
    let bad_format = r#"{"kind": "list", "list": "t.txt", "images": "i", "format": "xray"}"#;
    assert!(serde_json::from_str::<DataSource>(bad_format).is_err());
    assert_eq!(ListKind::Colon.format(Some(7)).unwrap().num_classes, 7);
}

/// A data set that cannot be trained or evaluated on is refused when it loads, naming
/// the list: no images, one class for a single-label task (a panic inside the loss
/// before), an image listed twice with different labels.
#[test]
fn unusable_data_sets_are_refused_when_they_load() {
    let dir = Scratch::new("unusable");
    let load = |text: &str, num_classes: Option<usize>| {
        dir.write("list.txt", text.as_bytes());
        DataSource::List {
            list: dir.path().join("list.txt"),
            images: dir.path().join("images"),
            format: ListKind::Colon,
            num_classes,
            classes: None,
            check_images: false,
        }
        .load()
    };
    assert!(
        load("a.png 0\nb.png 1\na.png 0\n", None).is_ok(),
        "identical repeats are allowed"
    );
    for (text, classes, want) in [
        ("", None, "list.txt lists no images"),
        (
            "a.png 0\nb.png 0\n",
            Some(1),
            "needs at least 2 classes, and this data set has 1",
        ),
        (
            "a.png 0\nb.png 1\na.png 1\n",
            None,
            "image a.png is listed twice with different labels (classes [0] and [1])",
        ),
    ] {
        let e = load(text, classes).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    dir.write("classes.txt", b"lung\nheart\nlung\n");
    let e = DataSource::List {
        list: dir.write("list3.txt", b"a.png 0\nb.png 2\n"),
        images: dir.path().join("images"),
        format: ListKind::Colon,
        num_classes: Some(3),
        classes: Some(dir.path().join("classes.txt")),
        check_images: false,
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("classes.txt:3: class name \"lung\" is already on line 1"),
        "{e}"
    );
}
