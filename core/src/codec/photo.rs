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
    let (mut photo, orientation) = decode_as_stored(bytes)?;
    let max_side = max_side.max(1);
    if photo.width().max(photo.height()) > max_side {
        // Each output pixel the mean of the pixels it covers, in integers: a filter's
        // floating-point buffers took a 12-megapixel photo's capture past 200 MB, more than a
        // cheap phone gives an app (it was killed, not told).
        photo = photo.thumbnail(max_side, max_side);
    }
    // Turned upright once small: the same picture, a fraction of the copy.
    photo.apply_orientation(orientation);
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
    let (mut image, orientation) = decode_as_stored(bytes)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Decodes a JPEG or PNG, bounded, as its pixels are stored, with the orientation its EXIF
/// says they are to be shown in.
fn decode_as_stored(
    bytes: &[u8],
) -> Result<(DynamicImage, image::metadata::Orientation), PhotoError> {
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
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    Ok((image, orientation))
}

/// Whether a JPEG is whole: its markers, walked from the start, reach the end of image. The
/// decoder takes a file cut short (a copy or a transfer that stopped) as whole, its missing
/// part grey: a consent form half there. What follows the end (a motion photo's clip, a
/// maker's trailer) is not read.
fn jpeg_ends(bytes: &[u8]) -> bool {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.get(..2) != Some(&[0xFF, SOI]) {
        return false;
    }
    let mut at = 2;
    loop {
        // A marker, after any fill bytes.
        while bytes.get(at..at + 2) == Some(&[0xFF, 0xFF]) {
            at += 1;
        }
        let (Some(0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return false;
        };
        at += 2;
        match marker {
            EOI => return true,
            // Markers with no segment: restarts, and TEM.
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(&[high, low]) = bytes.get(at..at + 2) else {
            return false;
        };
        let length = usize::from(u16::from_be_bytes([high, low]));
        if length < 2 {
            return false;
        }
        at += length;
        if marker != SOS {
            continue;
        }
        // The scan's coded bytes hold no marker: a 0xFF in them is followed by 0x00 (a 0xFF
        // byte), by a restart marker, or by more 0xFF; anything else is the next marker.
        loop {
            let Some(next) = bytes
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            else {
                return false;
            };
            at += next;
            match bytes.get(at + 1) {
                None => return false,
                Some(0x00 | 0xD0..=0xD7) => at += 2,
                Some(0xFF) => at += 1,
                Some(_) => break,
            }
        }
    }
}

/// Whether the first bytes of an image (`head`: a JPEG's or a PNG's, as its upload's first
/// chunk brings them, 64 KiB at least) hold metadata a capture takes away: a JPEG's
/// application segments past JFIF (EXIF with its GPS position, XMP, ...) or comments, or
/// segments running past `head` before the first scan (what a capture writes needs a few
/// hundred bytes: metadata pushed past the first chunk is refused as unseen); a PNG's EXIF or
/// text chunks anywhere in `head`. What a capture writes (`reencode`, `strip`) holds none; an
/// app of an earlier version kept a document's as taken. A PNG's chunks past `head` are not
/// judged.
pub fn carries_metadata(media_type: &str, head: &[u8]) -> bool {
    match media_type {
        "image/jpeg" => jpeg_metadata(head),
        "image/png" => png_metadata(head),
        _ => false,
    }
}

fn jpeg_metadata(bytes: &[u8]) -> bool {
    const SOS: u8 = 0xDA;
    const APP0: u8 = 0xE0;
    let mut at = 2;
    loop {
        while bytes.get(at..at + 2) == Some(&[0xFF, 0xFF]) {
            at += 1;
        }
        let (Some(0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            // Past the head before the first scan (or not a marker where one must be).
            return true;
        };
        match marker {
            SOS => return false,
            0xE1..=0xEF | 0xFE => return true,
            APP0 if bytes.get(at + 4..at + 9) != Some(b"JFIF\0") => return true,
            _ => {}
        }
        let Some(&[high, low]) = bytes.get(at + 2..at + 4) else {
            return true;
        };
        at += 2 + usize::from(u16::from_be_bytes([high, low]));
    }
}

fn png_metadata(bytes: &[u8]) -> bool {
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if matches!(&header[4..8], b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt") {
            return true;
        }
        // The chunk's type, data and CRC.
        at = at.saturating_add(12).saturating_add(length);
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        }));
        encode_jpeg(image, 90).unwrap()
    }

    /// What a capture writes carries no metadata; a camera's EXIF (its GPS position), an XMP
    /// packet, a comment or a PNG's text chunk does, in the first bytes an upload brings.
    #[test]
    fn metadata_a_capture_strips_is_found_in_an_images_first_bytes() {
        let clean = jpeg();
        assert!(!carries_metadata("image/jpeg", &clean));
        assert!(!carries_metadata(
            "image/jpeg",
            &strip(&clean, ImageFormat::Jpeg).unwrap()
        ));
        let png = strip(&clean, ImageFormat::Png).unwrap();
        assert!(!carries_metadata("image/png", &png));
        // An EXIF segment after the start of image, as a camera writes it.
        let exif = b"Exif\0\0MM\0*\0\0\0\x08GPS";
        let mut camera = vec![0xFF, 0xD8, 0xFF, 0xE1];
        camera.extend(u16::try_from(exif.len() + 2).unwrap().to_be_bytes());
        camera.extend(exif);
        camera.extend(&clean[2..]);
        assert!(carries_metadata("image/jpeg", &camera));
        let mut commented = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x06];
        commented.extend(b"home");
        commented.extend(&clean[2..]);
        assert!(carries_metadata("image/jpeg", &commented));
        // A PNG text chunk before its image data.
        let mut texted = png[..33].to_vec();
        texted.extend(11u32.to_be_bytes());
        texted.extend(b"tEXtComment\0gps");
        texted.extend([0u8; 4]);
        texted.extend(&png[33..]);
        assert!(carries_metadata("image/png", &texted));
        // After its image data too, within what the chunk brings.
        let mut trailing = png[..png.len() - 12].to_vec();
        trailing.extend(11u32.to_be_bytes());
        trailing.extend(b"tEXtComment\0gps");
        trailing.extend([0u8; 4]);
        trailing.extend(&png[png.len() - 12..]);
        assert!(carries_metadata("image/png", &trailing));
        // A JPEG whose segments run past the first chunk before its first scan: what lies
        // beyond is not seen, and a capture's header is a few hundred bytes.
        let mut padded = vec![0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFD];
        padded.extend(b"JFIF\0");
        padded.resize(4 + 0xFFFD, 0);
        padded.extend(&camera[2..]);
        assert!(carries_metadata("image/jpeg", &padded[..64 * 1024]));
        // Other types are not images: nothing to judge.
        assert!(!carries_metadata("application/pdf", &camera));
    }

    #[test]
    fn a_jpeg_is_whole_when_its_markers_reach_the_end_whatever_follows() {
        let whole = jpeg();
        assert!(jpeg_ends(&whole));
        for cut in [whole.len() / 3, whole.len() / 2, whole.len() - 2] {
            assert!(!jpeg_ends(&whole[..cut]), "cut at {cut}");
            let mut padded = whole[..cut].to_vec();
            padded.extend([0u8; 4096]);
            assert!(!jpeg_ends(&padded), "cut at {cut}, padded");
        }
        // A motion photo's clip after the image, holding marker-like bytes of its own.
        let mut motion = whole.clone();
        motion.extend([0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 0xFF, 0xD8, 0xFF]);
        assert!(jpeg_ends(&motion));
        assert!(!jpeg_ends(b"not a jpeg"));
    }
}
