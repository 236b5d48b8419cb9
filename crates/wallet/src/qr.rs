//! QR codes of binding addresses, as SVG (for web pages) and PNG (for apps),
//! from the qrcode crate's module matrix.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in the PNG.
const PNG_SCALE: usize = 8;
/// Quiet zone around the code, in modules (the standard asks for 4).
const QUIET_ZONE: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("cannot make a QR code: {0}")]
pub struct QrError(String);

/// The SVG document and the base64 PNG of `text`'s QR code.
pub fn render(text: &str) -> Result<(String, String), QrError> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok((svg, STANDARD.encode(png(&code)?)))
}

fn png(code: &QrCode) -> Result<Vec<u8>, QrError> {
    let width = code.width();
    let side = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            for dy in 0..PNG_SCALE {
                let row = (y * PNG_SCALE + dy) * side;
                pixels[row + x * PNG_SCALE..row + (x + 1) * PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| QrError(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| QrError(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_svg_and_a_png_that_decodes() {
        let (svg, png_b64) = render("http://localhost:8080/bind/abc").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let bytes = STANDARD.decode(png_b64).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert!(info.width >= 29 * PNG_SCALE as u32);
    }
}
