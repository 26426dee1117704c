//! Planar `f32` images (`[channels, height, width]`, values in `[0, 1]`) and decoding of
//! PNG (8- and 16-bit, gray / gray+alpha / RGB / RGBA) and JPEG files into them. 16-bit
//! samples are divided by 65535, 8-bit by 255; alpha is dropped. Everything after
//! decoding (crop, resize, normalise) works on this one type.

use std::path::Path;

use image::DynamicImage;

use crate::error::{DataError, TransformError};

/// A planar float image: plane after plane, each row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// Checks that `data` has `channels × height × width` values and that no size is zero.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self, TransformError> {
        let img = Image {
            channels,
            height,
            width,
            data,
        };
        img.validate()?;
        Ok(img)
    }

    /// The checks of [`Image::new`], for images built field by field.
    pub fn validate(&self) -> Result<(), TransformError> {
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return Err(TransformError::Empty {
                channels: self.channels,
                height: self.height,
                width: self.width,
            });
        }
        if self.data.len() != self.channels * self.height * self.width {
            return Err(TransformError::DataLength {
                channels: self.channels,
                height: self.height,
                width: self.width,
                found: self.data.len(),
            });
        }
        Ok(())
    }

    /// The value at channel `c`, row `y`, column `x` (panics when out of bounds, like indexing).
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}

fn planar<T: Copy>(raw: &[T], channels_in: usize, channels_out: usize, scale: impl Fn(T) -> f32) -> Vec<f32> {
    let pixels = raw.len() / channels_in;
    let mut out = vec![0f32; pixels * channels_out];
    for c in 0..channels_out {
        let plane = &mut out[c * pixels..(c + 1) * pixels];
        for (p, v) in plane.iter_mut().enumerate() {
            *v = scale(raw[p * channels_in + c]);
        }
    }
    out
}

fn from_dynamic(img: DynamicImage) -> Image {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let lut: Vec<f32> = (0..256).map(|v| v as f32 / 255.0).collect();
    let u8s = |v: u8| lut[v as usize];
    let u16s = |v: u16| v as f32 / 65535.0;
    let (channels, data) = match img {
        DynamicImage::ImageLuma8(b) => (1, planar(b.as_raw(), 1, 1, u8s)),
        DynamicImage::ImageLumaA8(b) => (1, planar(b.as_raw(), 2, 1, u8s)),
        DynamicImage::ImageRgb8(b) => (3, planar(b.as_raw(), 3, 3, u8s)),
        DynamicImage::ImageRgba8(b) => (3, planar(b.as_raw(), 4, 3, u8s)),
        DynamicImage::ImageLuma16(b) => (1, planar(b.as_raw(), 1, 1, u16s)),
        DynamicImage::ImageLumaA16(b) => (1, planar(b.as_raw(), 2, 1, u16s)),
        DynamicImage::ImageRgb16(b) => (3, planar(b.as_raw(), 3, 3, u16s)),
        DynamicImage::ImageRgba16(b) => (3, planar(b.as_raw(), 4, 3, u16s)),
        other => (3, planar(other.to_rgb32f().as_raw(), 3, 3, |v: f32| v)),
    };
    Image {
        channels,
        height,
        width,
        data,
    }
}

/// Largest image the loader decodes, in pixels (100 megapixels: a 10000 × 10000 X-ray;
/// every image is resized to the model's input, and a small file declaring more is a
/// decompression bomb that would take gigabytes as `f32` planes).
pub const MAX_PIXELS: u64 = 100_000_000;

/// A JPEG whose data ends before its end-of-image marker: the decoder fills the missing
/// part with grey and succeeds, so it is caught here. The marker segments are walked
/// from the start (a thumbnail inside an APP segment is skipped whole) and each scan's
/// entropy-coded data is read to the marker after it; what follows the end-of-image
/// marker (a phone's appended video, say) is not looked at. A stream that stops making
/// sense is left to the decoder.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut at = 2;
    loop {
        // A marker: 0xFF (fill bytes allowed), then its code.
        if at >= bytes.len() {
            return true;
        }
        if bytes[at] != 0xFF {
            return false;
        }
        while at < bytes.len() && bytes[at] == 0xFF {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else {
            return true;
        };
        at += 1;
        match code {
            0xD9 => return false,           // end of image
            0x01 | 0xD0..=0xD7 => continue, // no length
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return true;
        };
        at += length;
        if code == 0xDA {
            // Entropy-coded data: 0xFF is escaped as FF 00, restart markers sit inside.
            loop {
                match bytes.get(at..at + 2) {
                    None => return true,
                    Some([0xFF, next]) if *next != 0x00 && !(0xD0..=0xD7).contains(next) => break,
                    _ => at += 1,
                }
            }
        }
    }
}

/// Decode an in-memory PNG or JPEG; `origin` names it in errors.
pub fn decode_bytes(bytes: &[u8], origin: &Path) -> Result<Image, DataError> {
    let fail = |message: String| DataError::Decode {
        path: origin.to_path_buf(),
        message,
    };
    let decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?
        .into_decoder()
        .map_err(|e| fail(e.to_string()))?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(fail(format!(
            "the image is {width} × {height} pixels, more than the {} million the loader takes \
             (it is resized to the model's input anyway): downscale it first",
            MAX_PIXELS / 1_000_000
        )));
    }
    if is_truncated_jpeg(bytes) {
        return Err(fail(
            "truncated: the JPEG data ends before its end-of-image marker".into(),
        ));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| fail(e.to_string()))?;
    let out = from_dynamic(img);
    if out.data.is_empty() {
        return Err(DataError::Decode {
            path: origin.to_path_buf(),
            message: "image has no pixels".into(),
        });
    }
    Ok(out)
}

/// Read and decode an image file.
pub fn decode_file(path: &Path) -> Result<Image, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes, path)
}
