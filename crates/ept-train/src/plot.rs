//! Minimal raster plots written as PNG (no plotting dependency): reliability diagrams,
//! class-coloured 2-D scatter plots (PCA, t-SNE) and per-class histograms, with titles
//! and axis labels in a built-in 3 × 5 pixel font. Enough for a run report; not a library.

use std::path::Path;

use image::{Rgb, RgbImage};

/// Ten distinguishable class colours (Tableau 10).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

pub fn class_colour(class: usize) -> [u8; 3] {
    PALETTE[class % PALETTE.len()]
}

/// 3 × 5 glyphs, one bit per pixel, rows top to bottom, 3 bits per row (MSB = left).
fn glyph(c: char) -> u16 {
    match c.to_ascii_uppercase() {
        '0' => 0b111_101_101_101_111,
        '1' => 0b010_110_010_010_111,
        '2' => 0b111_001_111_100_111,
        '3' => 0b111_001_111_001_111,
        '4' => 0b101_101_111_001_001,
        '5' => 0b111_100_111_001_111,
        '6' => 0b111_100_111_101_111,
        '7' => 0b111_001_010_010_010,
        '8' => 0b111_101_111_101_111,
        '9' => 0b111_101_111_001_111,
        'A' => 0b010_101_111_101_101,
        'B' => 0b110_101_110_101_110,
        'C' => 0b011_100_100_100_011,
        'D' => 0b110_101_101_101_110,
        'E' => 0b111_100_110_100_111,
        'F' => 0b111_100_110_100_100,
        'G' => 0b011_100_101_101_011,
        'H' => 0b101_101_111_101_101,
        'I' => 0b111_010_010_010_111,
        'J' => 0b001_001_001_101_010,
        'K' => 0b101_101_110_101_101,
        'L' => 0b100_100_100_100_111,
        'M' => 0b101_111_111_101_101,
        'N' => 0b110_101_101_101_101,
        'O' => 0b010_101_101_101_010,
        'P' => 0b110_101_110_100_100,
        'Q' => 0b010_101_101_110_011,
        'R' => 0b110_101_110_101_101,
        'S' => 0b011_100_010_001_110,
        'T' => 0b111_010_010_010_010,
        'U' => 0b101_101_101_101_111,
        'V' => 0b101_101_101_101_010,
        'W' => 0b101_101_111_111_101,
        'X' => 0b101_101_010_101_101,
        'Y' => 0b101_101_010_010_010,
        'Z' => 0b111_001_010_100_111,
        '.' => 0b000_000_000_000_010,
        '-' => 0b000_000_111_000_000,
        '%' => 0b101_001_010_100_101,
        ':' => 0b000_010_000_010_000,
        '=' => 0b000_111_000_111_000,
        '/' => 0b001_001_010_100_100,
        '(' => 0b001_010_010_010_001,
        ')' => 0b100_010_010_010_100,
        '_' => 0b000_000_000_000_111,
        _ => 0,
    }
}

/// A white canvas with a plot area and drawing primitives.
pub struct Canvas {
    image: RgbImage,
    /// Plot area in pixels: left, top, right, bottom.
    area: (u32, u32, u32, u32),
}

impl Canvas {
    pub fn new(width: u32, height: u32, title: &str) -> Self {
        let mut canvas = Canvas {
            image: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])),
            area: (30, 24, width - 12, height - 24),
        };
        canvas.text(8, 6, title, [0, 0, 0], 2);
        let (l, t, r, b) = canvas.area;
        canvas.rect(l, t, r, b, [0, 0, 0]);
        canvas
    }

    fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.image.width() && (y as u32) < self.image.height() {
            self.image.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }

    /// Text at pixel (x, y), each font pixel drawn `scale` × `scale`.
    pub fn text(&mut self, x: u32, y: u32, text: &str, colour: [u8; 3], scale: u32) {
        for (i, c) in text.chars().enumerate() {
            let bits = glyph(c);
            for row in 0..5 {
                for col in 0..3 {
                    if bits >> (14 - (row * 3 + col)) & 1 == 1 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let px = x + (i as u32 * 4 + col) * scale + dx;
                                let py = y + row * scale + dy;
                                self.put(px as i64, py as i64, colour);
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn rect(&mut self, l: u32, t: u32, r: u32, b: u32, colour: [u8; 3]) {
        for x in l..=r {
            self.put(x as i64, t as i64, colour);
            self.put(x as i64, b as i64, colour);
        }
        for y in t..=b {
            self.put(l as i64, y as i64, colour);
            self.put(r as i64, y as i64, colour);
        }
    }

    /// Map data coordinates in [0, 1]² to pixels of the plot area (y up).
    fn to_pixel(&self, x: f64, y: f64) -> (i64, i64) {
        let (l, t, r, b) = self.area;
        let px = l as f64 + x.clamp(0.0, 1.0) * (r - l) as f64;
        let py = b as f64 - y.clamp(0.0, 1.0) * (b - t) as f64;
        (px.round() as i64, py.round() as i64)
    }

    pub fn fill(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, colour: [u8; 3]) {
        let (a, b) = (self.to_pixel(x0, y0), self.to_pixel(x1, y1));
        for x in a.0.min(b.0)..=a.0.max(b.0) {
            for y in a.1.min(b.1)..=a.1.max(b.1) {
                self.put(x, y, colour);
            }
        }
    }

    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, colour: [u8; 3]) {
        let (a, b) = (self.to_pixel(x0, y0), self.to_pixel(x1, y1));
        let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).max(1);
        for s in 0..=steps {
            let f = s as f64 / steps as f64;
            let x = a.0 as f64 + f * (b.0 - a.0) as f64;
            let y = a.1 as f64 + f * (b.1 - a.1) as f64;
            self.put(x.round() as i64, y.round() as i64, colour);
        }
    }

    pub fn dot(&mut self, x: f64, y: f64, colour: [u8; 3]) {
        let (px, py) = self.to_pixel(x, y);
        for dx in -1..=1 {
            for dy in -1..=1 {
                self.put(px + dx, py + dy, colour);
            }
        }
    }

    /// Axis captions under and left of the plot area.
    pub fn axes(&mut self, x_label: &str, y_label: &str) {
        let (l, _, _, b) = self.area;
        self.text(l, b + 8, x_label, [60, 60, 60], 2);
        self.text(2, 24, y_label, [60, 60, 60], 1);
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut bytes = Vec::new();
        self.image
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        ept_backend::fs::write_atomic(path, &bytes).map_err(|e| e.to_string())
    }
}

/// Reliability diagram: accuracy per confidence bin (bars), the diagonal, the gap in red.
pub fn reliability_diagram(bins: &[crate::metrics::ReliabilityBin], title: &str) -> Canvas {
    let mut c = Canvas::new(360, 360, title);
    let width = 1.0 / bins.len().max(1) as f64;
    for (k, bin) in bins.iter().enumerate() {
        if bin.count == 0 {
            continue;
        }
        let x0 = k as f64 * width;
        c.fill(
            x0 + 0.1 * width,
            0.0,
            x0 + 0.9 * width,
            bin.accuracy,
            [31, 119, 180],
        );
        let (lo, hi) = (
            bin.accuracy.min(bin.mean_confidence),
            bin.accuracy.max(bin.mean_confidence),
        );
        c.fill(x0 + 0.35 * width, lo, x0 + 0.65 * width, hi, [214, 39, 40]);
    }
    c.line(0.0, 0.0, 1.0, 1.0, [0, 0, 0]);
    c.axes("CONFIDENCE", "ACC");
    c
}

/// Scale each coordinate to [0.03, 0.97].
fn normalise(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let sx = (x1 - x0).max(1e-12);
    let sy = (y1 - y0).max(1e-12);
    points
        .iter()
        .map(|&(x, y)| (0.03 + 0.94 * (x - x0) / sx, 0.03 + 0.94 * (y - y0) / sy))
        .collect()
}

/// 2-D scatter coloured by class.
pub fn scatter(points: &[(f64, f64)], labels: &[usize], title: &str, x_label: &str, y_label: &str) -> Canvas {
    let mut c = Canvas::new(420, 420, title);
    for (&(x, y), &label) in normalise(points).iter().zip(labels) {
        c.dot(x, y, class_colour(label));
    }
    c.axes(x_label, y_label);
    c
}

/// Per-class histograms (outlines) of one value per sample, e.g. the first PCA component.
pub fn class_histograms(values: &[f64], labels: &[usize], bins: usize, title: &str) -> Canvas {
    let mut c = Canvas::new(420, 300, title);
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-12);
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut counts = vec![vec![0usize; bins]; classes];
    for (&v, &label) in values.iter().zip(labels) {
        let bin = (((v - lo) / span) * bins as f64).floor().min(bins as f64 - 1.0) as usize;
        counts[label][bin] += 1;
    }
    let peak = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (class, row) in counts.iter().enumerate() {
        let colour = class_colour(class);
        for (k, &n) in row.iter().enumerate() {
            let (x0, x1) = (k as f64 / bins as f64, (k + 1) as f64 / bins as f64);
            let y = n as f64 / peak * 0.95;
            c.line(x0, y, x1, y, colour);
            if k + 1 < bins {
                let next = row[k + 1] as f64 / peak * 0.95;
                c.line(x1, y, x1, next, colour);
            }
        }
    }
    c.axes("PC1", "N");
    c
}
