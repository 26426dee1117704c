//! Transform tests: determinism per seed, output shapes, normalisation values, flip,
//! torchvision crop geometry (RandomResizedCrop parameters and fallback, CenterCrop
//! rounding and padding, shorter-side resize), decoding of 16-bit and RGBA PNGs, config
//! parsing, and loader batches that do not depend on the thread count.

mod common;

use common::Scratch;
use ept_backend::Rng;
use ept_data::transform::{IMAGENET_MEAN, IMAGENET_STD, MAX_ASPECT, center_crop, random_resized_crop_params};
use ept_data::{
    Image, Interpolation, Loader, LoaderOptions, Pipeline, Sample, Size, Target, Transform, decode_file,
    sample_rng,
};
use proptest::prelude::*;

fn ramp(c: usize, h: usize, w: usize) -> Image {
    let data = (0..c * h * w).map(|v| (v % 251) as f32 / 250.0).collect();
    Image::new(c, h, w, data).unwrap()
}

#[test]
fn training_pipeline_is_deterministic_per_seed() {
    let img = ramp(1, 40, 56);
    let p = Pipeline::medfmc_train(24);
    let run = |seed, epoch, index| p.apply(img.clone(), &mut sample_rng(seed, epoch, index)).unwrap();
    assert_eq!(run(7, 0, 3), run(7, 0, 3));
    let others = [run(8, 0, 3), run(7, 1, 3), run(7, 0, 4)];
    assert!(
        others.iter().all(|o| *o != run(7, 0, 3)),
        "seed, epoch and index must all matter"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pipelines_produce_the_requested_shape(h in 1usize..90, w in 1usize..90, gray in any::<bool>(), seed in any::<u64>()) {
        let img = ramp(if gray { 1 } else { 3 }, h, w);
        let elongated = h.max(w) > MAX_ASPECT * h.min(w);
        // (pipeline, whether it resizes the shorter side, which refuses elongated images)
        for (p, shorter) in [(Pipeline::medfmc_train(32), false), (Pipeline::medfmc_test(32), false), (Pipeline::center_crop_eval(32), true)] {
            let result = p.apply(img.clone(), &mut Rng::new(seed));
            if shorter && elongated {
                prop_assert!(result.is_err());
                continue;
            }
            let out = result.unwrap();
            prop_assert_eq!((out.channels, out.height, out.width), (3, 32, 32));
            prop_assert_eq!(out.data.len(), 3 * 32 * 32);
            prop_assert!(out.data.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn random_resized_crop_stays_inside_the_image(h in 1usize..300, w in 1usize..300, seed in any::<u64>()) {
        let (top, left, ch, cw) = random_resized_crop_params(h, w, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut Rng::new(seed));
        prop_assert!(ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w);
    }
}

#[test]
fn random_resized_crop_area_and_ratio_follow_torchvision() {
    let mut rng = Rng::new(1);
    for _ in 0..500 {
        let (_, _, h, w) = random_resized_crop_params(400, 400, [0.25, 0.5], [0.75, 4.0 / 3.0], &mut rng);
        let area = (h * w) as f64 / 160_000.0;
        assert!((0.23..=0.52).contains(&area), "area fraction {area}");
        let ratio = w as f64 / h as f64;
        assert!((0.73..=1.37).contains(&ratio), "ratio {ratio}");
    }
}

#[test]
fn random_resized_crop_falls_back_to_a_centred_crop() {
    // A scale above 1 can never fit: all 10 attempts fail, as in torchvision.
    let mut rng = Rng::new(3);
    // Wide image, ratio clamp at 4/3: h = 100, w = round(133.33) = 133, centred.
    assert_eq!(
        random_resized_crop_params(100, 400, [1.5, 2.0], [0.75, 4.0 / 3.0], &mut rng),
        (0, 133, 100, 133)
    );
    // Tall image: w = 100, h = round(100 / 0.75) = 133.
    assert_eq!(
        random_resized_crop_params(400, 100, [1.5, 2.0], [0.75, 4.0 / 3.0], &mut rng),
        (133, 0, 133, 100)
    );
    // Ratio within range: the whole image.
    assert_eq!(
        random_resized_crop_params(90, 100, [1.5, 2.0], [0.75, 4.0 / 3.0], &mut rng),
        (0, 0, 90, 100)
    );
}

#[test]
fn normalisation_uses_imagenet_statistics() {
    let img = Image::new(3, 2, 2, vec![0.5; 12]).unwrap();
    let out = Transform::Normalize {
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
    }
    .apply(img, &mut Rng::new(0))
    .unwrap();
    for c in 0..3 {
        let want = (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        assert!(
            out.plane(c).iter().all(|v| (v - want).abs() < 1e-6),
            "channel {c}"
        );
    }
    // mmcls 0-255 statistics agree: (127.5 - 123.675) / 58.395 for channel 0.
    assert!((out.at(0, 0, 0) - (127.5 - 123.675) / 58.395).abs() < 1e-3);
    // A 3-value normalisation on a 1-channel image is an error, not a panic.
    let gray = Image::new(1, 2, 2, vec![0.5; 4]).unwrap();
    let e = Transform::Normalize {
        mean: IMAGENET_MEAN.to_vec(),
        std: IMAGENET_STD.to_vec(),
    }
    .apply(gray, &mut Rng::new(0))
    .unwrap_err();
    assert!(e.to_string().contains("expected 3 channels"), "{e}");
}

#[test]
fn horizontal_flip_mirrors_every_row() {
    let img = ramp(2, 3, 5);
    let flipped = Transform::HorizontalFlip { p: 1.0 }
        .apply(img.clone(), &mut Rng::new(0))
        .unwrap();
    for c in 0..2 {
        for y in 0..3 {
            for x in 0..5 {
                assert_eq!(flipped.at(c, y, x), img.at(c, y, 4 - x));
            }
        }
    }
    let kept = Transform::HorizontalFlip { p: 0.0 }
        .apply(img.clone(), &mut Rng::new(0))
        .unwrap();
    assert_eq!(kept, img);
    // p = 0.5 flips about half the time.
    let flips = (0..1000)
        .filter(|&i| {
            Transform::HorizontalFlip { p: 0.5 }
                .apply(img.clone(), &mut Rng::new(i))
                .unwrap()
                != img
        })
        .count();
    assert!((400..600).contains(&flips), "{flips}");
}

#[test]
fn center_crop_geometry_matches_torchvision() {
    let img = ramp(1, 5, 7);
    // top = round((5 - 3) / 2) = 1, left = round((7 - 3) / 2) = 2.
    let out = center_crop(&img, (3, 3));
    assert_eq!(out.at(0, 0, 0), img.at(0, 1, 2));
    assert_eq!(out.at(0, 2, 2), img.at(0, 3, 4));
    // (6 - 3) / 2 = 1.5 rounds half to even: 2, like Python's round.
    let six = ramp(1, 6, 6);
    assert_eq!(center_crop(&six, (3, 3)).at(0, 0, 0), six.at(0, 2, 2));
    // Larger than the image: zero padding, image centred at offset (4 - 2) / 2 = 1.
    let small = Image::new(1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let padded = center_crop(&small, (4, 4));
    #[rustfmt::skip]
    let want = vec![0.0, 0.0, 0.0, 0.0,
                    0.0, 1.0, 2.0, 0.0,
                    0.0, 3.0, 4.0, 0.0,
                    0.0, 0.0, 0.0, 0.0];
    assert_eq!(padded.data, want);
}

#[test]
fn resize_shorter_keeps_the_aspect_ratio_like_torchvision() {
    let out = Transform::ResizeShorter {
        size: 50,
        interpolation: Interpolation::Bilinear,
    }
    .apply(ramp(1, 100, 233), &mut Rng::new(0))
    .unwrap();
    assert_eq!((out.height, out.width), (50, 116)); // int(50 * 233 / 100)
    // A strip far longer than wide would resize to a huge image: refused, saying why.
    let shorter = Transform::ResizeShorter {
        size: 50,
        interpolation: Interpolation::Bilinear,
    };
    let err = shorter
        .apply(ramp(1, 2, 1000), &mut Rng::new(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("2×1000 px") && err.contains("64:1"), "{err}");
    assert!(shorter.apply(ramp(1, 2, 128), &mut Rng::new(0)).is_ok());
    let out = Transform::Resize {
        size: Size::HeightWidth([7, 9]),
        interpolation: Interpolation::Bicubic,
    }
    .apply(ramp(1, 100, 233), &mut Rng::new(0))
    .unwrap();
    assert_eq!((out.height, out.width), (7, 9));
}

#[test]
fn grayscale_becomes_three_identical_channels() {
    let out = Transform::ToRgb.apply(ramp(1, 4, 4), &mut Rng::new(0)).unwrap();
    assert_eq!(out.channels, 3);
    assert_eq!(out.plane(0), out.plane(1));
    assert_eq!(out.plane(1), out.plane(2));
    assert!(Transform::ToRgb.apply(ramp(2, 4, 4), &mut Rng::new(0)).is_err());
}

#[test]
fn sixteen_bit_and_rgba_pngs_decode_to_unit_range() {
    let dir = Scratch::new("decode");
    let path16 = dir.path().join("ct16.png");
    let img16 =
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(3, 1, vec![0, 32768, 65535]).unwrap();
    img16.save(&path16).unwrap();
    let got = decode_file(&path16).unwrap();
    assert_eq!((got.channels, got.height, got.width), (1, 1, 3));
    assert_eq!(got.data, vec![0.0, 32768.0 / 65535.0, 1.0]);

    let path_rgba = dir.path().join("rgba.png");
    image::RgbaImage::from_raw(2, 1, vec![255, 0, 51, 7, 0, 255, 0, 200])
        .unwrap()
        .save(&path_rgba)
        .unwrap();
    let got = decode_file(&path_rgba).unwrap();
    assert_eq!((got.channels, got.height, got.width), (3, 1, 2));
    assert_eq!(
        got.data,
        vec![1.0, 0.0, 0.0, 1.0, 0.2, 0.0],
        "planar RGB, alpha dropped"
    );

    let garbage = dir.write("broken.png", b"not a png");
    let e = decode_file(&garbage).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("cannot decode"), "{e}");
}

/// A PNG chunk with its length and a valid checksum.
fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A PNG whose header says `width × height`, with the given image data chunks.
fn png_with_size_and_data(width: u32, height: u32, data_chunks: &[&[u8]]) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    for data in data_chunks {
        png.extend(png_chunk(b"IDAT", data));
    }
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A PNG whose header says `width × height`, without image data.
fn png_with_size(width: u32, height: u32) -> Vec<u8> {
    png_with_size_and_data(width, height, &[])
}

#[test]
fn zero_size_and_empty_images_are_errors_naming_the_file() {
    let dir = Scratch::new("zero-size");
    for (name, bytes) in [
        ("empty.png", Vec::new()),
        ("zero_width.png", png_with_size(0, 4)),
        ("zero_height.png", png_with_size(4, 0)),
        ("no_pixels.png", png_with_size(4, 4)), // header only: no image data
        ("empty.jpg", vec![0xFF, 0xD8, 0xFF, 0xD9]), // start and end of image, nothing between
    ] {
        let path = dir.write(name, &bytes);
        let e = decode_file(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{name}: {e}");
    }
}

#[test]
fn pipelines_parse_from_config_and_reject_typos() {
    let json = r#"[{"type": "random_resized_crop", "size": 224, "scale": [0.2, 1.0]},
                   {"type": "horizontal_flip"}, {"type": "to_rgb"}, {"type": "normalize"}]"#;
    let p: Pipeline = serde_json::from_str(json).unwrap();
    assert_eq!(p.steps.len(), 4);
    assert_eq!(p.steps[1], Transform::HorizontalFlip { p: 0.5 });
    assert!(p.validate().is_ok());
    let typo = r#"[{"type": "center_crop", "sizee": 224}]"#;
    let e = serde_json::from_str::<Pipeline>(typo).unwrap_err().to_string();
    assert!(e.contains("sizee"), "{e}");
    let bad = Pipeline::new(vec![Transform::RandomResizedCrop {
        size: Size::Square(8),
        scale: [0.9, 0.1],
        ratio: [0.75, 1.33],
        interpolation: Interpolation::Bicubic,
    }]);
    assert!(bad.unwrap_err().to_string().contains("scale"));
}

#[test]
fn loader_batches_do_not_depend_on_thread_count() {
    let dir = Scratch::new("loader");
    let samples: Vec<Sample> = (0..7)
        .map(|i| Sample {
            path: dir.png(&format!("im{i}.png"), 20 + i as u32, 30),
            id: format!("im{i}.png"),
            target: Target::Single(i % 3),
            group: None,
        })
        .collect();
    let batches = |threads| {
        let opts = LoaderOptions {
            batch_size: 3,
            threads,
            seed: 11,
            ..LoaderOptions::default()
        };
        let loader = Loader::new(samples.clone(), 3, Pipeline::medfmc_train(16), opts).unwrap();
        assert_eq!(loader.num_batches(), 3);
        loader.epoch(2).collect::<Result<Vec<_>, _>>().unwrap()
    };
    let one = batches(1);
    assert_eq!(one, batches(2));
    assert_eq!(one.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![3, 3, 1]);
    let mut seen: Vec<usize> = one.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..7).collect::<Vec<_>>(), "every sample once per epoch");
    // Dropping the iterator early stops the producer cleanly.
    let loader = Loader::new(
        samples.clone(),
        3,
        Pipeline::medfmc_train(16),
        LoaderOptions::default(),
    )
    .unwrap();
    let first = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(first.shape, [4, 3, 16, 16]);
    // A missing file surfaces as an error naming it.
    let mut broken = samples.clone();
    broken[0].path = dir.path().join("gone.png");
    let loader = Loader::new(
        broken,
        3,
        Pipeline::medfmc_test(16),
        LoaderOptions {
            shuffle: false,
            ..LoaderOptions::default()
        },
    )
    .unwrap();
    let e = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(e.contains("gone.png"), "{e}");
    // Targets that do not fit the class count are refused up front.
    assert!(Loader::new(samples, 2, Pipeline::medfmc_test(16), LoaderOptions::default()).is_err());
}

#[test]
fn malformed_images_are_errors_not_panics() {
    let empty = Image {
        channels: 1,
        height: 0,
        width: 0,
        data: vec![],
    };
    let short = Image {
        channels: 3,
        height: 2,
        width: 2,
        data: vec![0.0; 5],
    };
    for img in [empty, short] {
        for p in [
            Pipeline::medfmc_train(8),
            Pipeline::medfmc_test(8),
            Pipeline::center_crop_eval(8),
        ] {
            assert!(p.apply(img.clone(), &mut Rng::new(0)).is_err());
        }
    }
    assert!(Image::new(3, 2, 2, vec![0.0; 5]).is_err());
}

/// A JPEG cut short decodes "successfully" (the decoder fills the rest with grey), so it
/// is refused by its missing end marker; the whole file still decodes. A small file
/// declaring more pixels than the loader takes is refused before anything is allocated.
#[test]
fn truncated_jpegs_and_decompression_bombs_are_refused() {
    let dir = Scratch::new("truncated-jpeg");
    let pixels: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let mut jpeg = Vec::new();
    image::RgbImage::from_raw(64, 64, pixels)
        .unwrap()
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let whole = dir.write("whole.jpg", &jpeg);
    assert_eq!(decode_file(&whole).unwrap().width, 64);
    for keep in [0.5, 0.95] {
        let cut = dir.write("cut.jpg", &jpeg[..(jpeg.len() as f64 * keep) as usize]);
        let e = decode_file(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.jpg") && e.contains("truncated"), "{keep}: {e}");
    }
    // Complete files with markers elsewhere are not truncated: bytes after the end of
    // the image (a phone's appended video, here a start-of-scan pair), and a thumbnail
    // (a whole JPEG, with its own end marker) inside an APP1 segment.
    let mut trailing = jpeg.clone();
    trailing.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 2, 3]);
    assert_eq!(
        decode_file(&dir.write("trailing.jpg", &trailing)).unwrap().width,
        64
    );
    let mut thumb = Vec::new();
    image::RgbImage::from_pixel(8, 8, image::Rgb([9, 99, 199]))
        .write_to(&mut std::io::Cursor::new(&mut thumb), image::ImageFormat::Jpeg)
        .unwrap();
    let mut with_thumb = vec![0xFF, 0xD8, 0xFF, 0xE1];
    with_thumb.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
    with_thumb.extend_from_slice(&thumb);
    with_thumb.extend_from_slice(&jpeg[2..]);
    assert_eq!(
        decode_file(&dir.write("thumb.jpg", &with_thumb)).unwrap().width,
        64
    );
    let cut = dir.write("thumb_cut.jpg", &with_thumb[..with_thumb.len() - 40]);
    assert!(decode_file(&cut).unwrap_err().to_string().contains("truncated"));
    // The start of a zlib stream is all the size check reads.
    let bomb = dir.write(
        "bomb.png",
        &png_with_size_and_data(20_000, 20_000, &[&[0x78, 0x9C]]),
    );
    let e = decode_file(&bomb).unwrap_err().to_string();
    assert!(e.contains("bomb.png") && e.contains("20000 × 20000"), "{e}");
}
