//! Metrics against independent reference values: `tools/golden/make_metric_golden.py`
//! (numpy re-implementations of mmcls 0.25 / MedFMC, cross-checked with scikit-learn;
//! versions in tools/golden/requirements-metrics.txt).

use std::path::Path;

use ept_train::metrics::*;
use serde_json::Value;

fn cases(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/metrics")
        .join(file);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn close(name: &str, case: &str, got: f64, want: &Value) {
    match want.as_f64() {
        Some(w) => assert!(
            (got - w).abs() < 1e-9 * w.abs().max(1.0),
            "{case}: {name} = {got}, expected {w}"
        ),
        None => assert!(got.is_nan(), "{case}: {name} = {got}, expected undefined"),
    }
}

#[test]
fn single_label_metrics_match_the_reference() {
    for case in cases("single_label.json") {
        let name = case["name"].as_str().unwrap();
        let probs = matrix(&case["inputs"]["prob"]);
        let labels = indices(&case["inputs"]["target"]);
        let classes = probs[0].len();
        let flags: Vec<Vec<bool>> = labels
            .iter()
            .map(|&y| (0..classes).map(|k| k == y).collect())
            .collect();
        let e = &case["expected"];
        // Exact score ties make top-1 implementation-defined (torch.topk); skip those rows' accuracy.
        if name != "sl_c5_ties" {
            close(
                "accuracy",
                name,
                accuracy(&probs, &labels),
                &e["accuracy_top1_pct"],
            );
            let predicted: Vec<Vec<bool>> = probs
                .iter()
                .map(|p| {
                    let t = argmax(p);
                    (0..classes).map(|k| k == t).collect()
                })
                .collect();
            close("f1_macro", name, macro_f1(&predicted, &flags), &e["f1_macro_pct"]);
        }
        close(
            "auc_macro",
            name,
            macro_auc(&probs, &flags),
            &e["auc_ovr_macro_pct"],
        );
        if name != "sl_c5_ties" {
            let (ece, bins) = expected_calibration_error(&probs, &labels);
            close("ece", name, ece, &e["ece"]);
            let counts: Vec<usize> = e["ece_bin_count"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(
                bins.iter().map(|b| b.count).collect::<Vec<_>>(),
                counts,
                "{name}: bin counts"
            );
        }
    }
}

#[test]
fn multi_label_metrics_match_the_reference() {
    for case in cases("multi_label.json") {
        let name = case["name"].as_str().unwrap();
        let scores = matrix(&case["inputs"]["score"]);
        let raw: Vec<Vec<i64>> = case["inputs"]["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect();
        if raw.iter().flatten().any(|&v| v < 0) {
            continue; // "difficult" (-1) labels: MedFMC's lists have none, and ept does not read them.
        }
        let flags: Vec<Vec<bool>> = raw.iter().map(|r| r.iter().map(|&v| v == 1).collect()).collect();
        let e = &case["expected"];
        close(
            "mAP",
            name,
            mean_average_precision(&scores, &flags),
            &e["mAP_pct"],
        );
        close("auc_macro", name, macro_auc(&scores, &flags), &e["auc_macro_pct"]);
        let predicted: Vec<Vec<bool>> = scores
            .iter()
            .map(|p| p.iter().map(|&v| v >= 0.5).collect())
            .collect();
        close("f1_macro", name, macro_f1(&predicted, &flags), &e["f1_macro_pct"]);
        close(
            "classwise_ece",
            name,
            classwise_ece(&scores, &flags),
            &e["classwise_ece"],
        );
    }
}

#[test]
fn feature_scatter_and_pca_match_the_reference() {
    for case in cases("features.json") {
        let name = case["name"].as_str().unwrap();
        let features = matrix(&case["inputs"]["features"]);
        let labels = indices(&case["inputs"]["label"]);
        let e = &case["expected"];
        let s = scatter(&features, &labels);
        close("trace_sw", name, s.within, &e["trace_sw"]);
        close("trace_sb", name, s.between, &e["trace_sb"]);
        close("ratio", name, s.ratio, &e["ratio_sb_sw"]);
        if let Some(want) = e["pca_explained_variance_ratio"].as_array() {
            let (_, ratios) = principal_components(&features, want.len());
            for (got, want) in ratios.iter().zip(want) {
                let want = want.as_f64().unwrap();
                assert!((got - want).abs() < 1e-6, "{name}: PCA ratio {got} vs {want}");
            }
        }
    }
}
