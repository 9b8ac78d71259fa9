//! A photo re-encoded at capture: decoded (JPEG or PNG), turned upright by its EXIF orientation,
//! downscaled to a longest side, and encoded again as JPEG. Re-encoding writes pixels only, so
//! no metadata of the original (EXIF, GPS position, camera, PNG text chunks) survives it. An
//! image captured as a document (a consent form photographed) is re-encoded the same way but
//! at its full size and in the format it is declared as (`strip`).

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// JPEG quality of a re-encoded photo: small, and legible for evidence.
const QUALITY: u8 = 85;
/// Pixels per side a decoder accepts (a 100-megapixel photo is 10,000 × 10,000).
const MAX_INPUT_SIDE: u32 = 12_000;
/// Bytes a decoder may allocate: bounds what a crafted file can make it take.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Why a photo could not be re-encoded. Never carries the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoError {
    /// Not a JPEG or a PNG, or a damaged one.
    NotAnImage,
    /// Wider or taller than a decoder accepts.
    TooLarge,
}

/// The re-encoded photo, JPEG.
pub fn reencode(bytes: &[u8], max_side: u32) -> Result<Vec<u8>, PhotoError> {
    let mut photo = decode(bytes)?;
    let max_side = max_side.max(1);
    if photo.width().max(photo.height()) > max_side {
        photo = photo.resize(max_side, max_side, image::imageops::FilterType::Triangle);
    }
    encode_jpeg(photo, QUALITY)
}

/// An image document without its metadata: upright, full size, encoded again as `format`
/// (JPEG, at a quality that keeps small print legible, or PNG, lossless).
pub fn strip(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, PhotoError> {
    let image = decode(bytes)?;
    match format {
        ImageFormat::Png => {
            let mut out = Vec::new();
            image
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .map_err(|_| PhotoError::NotAnImage)?;
            Ok(out)
        }
        _ => encode_jpeg(image, DOCUMENT_QUALITY),
    }
}

/// JPEG quality of an image document: its text must stay legible.
const DOCUMENT_QUALITY: u8 = 92;

/// Decodes a JPEG or PNG, bounded, turned upright by its EXIF orientation.
fn decode(bytes: &[u8]) -> Result<DynamicImage, PhotoError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| PhotoError::NotAnImage)?;
    match reader.format() {
        Some(ImageFormat::Jpeg) if !jpeg_ends(bytes) => return Err(PhotoError::NotAnImage),
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        _ => return Err(PhotoError::NotAnImage),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_INPUT_SIDE);
    limits.max_image_height = Some(MAX_INPUT_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Whether a JPEG's last scan ends: an end-of-image marker after its last start of scan (the
/// scan's own bytes never hold a marker). The decoder takes a file cut short (a copy or a
/// transfer that stopped) as whole, its missing part grey: a consent form half there.
fn jpeg_ends(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}

fn encode_jpeg(image: DynamicImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    // JPEG has no alpha channel: a PNG's transparency is flattened.
    let image = DynamicImage::ImageRgb8(image.into_rgb8());
    let mut out = Vec::new();
    image
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
        .map_err(|_| PhotoError::NotAnImage)?;
    Ok(out)
}

fn classify(e: image::ImageError) -> PhotoError {
    match e {
        image::ImageError::Limits(_) => PhotoError::TooLarge,
        _ => PhotoError::NotAnImage,
    }
}
