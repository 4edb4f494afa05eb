//! gzip (RFC 1952) around raw deflate from `miniz_oxide`: a 10-byte header, the deflate
//! stream, the CRC-32 of the input and its length. The framing is a fixed format of a few
//! lines; the deflate is the well-kept crate's. Level 1: network outputs compress on their own
//! thread, but the CPU they spend is the function's, and level 1 already removes most of the
//! redundancy of JSON telemetry (see `make bench` for the ratio).

use std::sync::Mutex;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, compress_to_output, create_comp_flags_from_zip_params,
};

/// The deflate level used: fast, most of the gain.
pub const LEVEL: u8 = 1;

/// One compressor kept between requests. Its state is about 235 KB, and making a fresh one
/// per request (allocated, so mapped, faulted in and zeroed, then unmapped) cost more CPU than
/// the compression itself; resetting a kept one only zeroes it. The outputs' threads share
/// it: one that finds it taken makes its own for that request.
static SPARE: Mutex<Option<Box<CompressorOxide>>> = Mutex::new(None);

/// Writes `input`, gzipped, to `out` (cleared first). Never inlined: making a compressor
/// takes a large stack frame, and a frame is touched in full (stack probes) when its function
/// is entered, so inlined into the sender's loop it cost every sender thread about 70 KiB of
/// RSS even with compression off.
#[inline(never)]
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // ID1 ID2, CM = deflate, no flags, no mtime, XFL 4 (fastest), OS 3 (Unix).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    let spare = SPARE.lock().ok().and_then(|mut s| s.take());
    let mut compressor = match spare {
        Some(mut kept) => {
            kept.reset();
            kept
        }
        None => Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(
            i32::from(LEVEL),
            0,
            0,
        ))),
    };
    deflate_into(&mut compressor, input, out);
    if let Ok(mut slot) = SPARE.lock()
        && slot.is_none()
    {
        *slot = Some(compressor);
    }
    out.extend_from_slice(&crc32(input).to_le_bytes());
    // ISIZE: the input's length modulo 2^32, as the format says.
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
}

/// Raw deflate of all of `input`, appended to `out`: the compressor hands its output over in
/// blocks, so `out` grows by what was written (handing it a zeroed slice to fill cost a
/// quarter of the input's size in zeroing per request).
fn deflate_into(compressor: &mut CompressorOxide, input: &[u8], out: &mut Vec<u8>) {
    // A compressor error cannot happen with a valid compressor; the stream would then end
    // short and the receiver refuse it, counted like any refusal.
    let _ = compress_to_output(compressor, input, TDEFLFlush::Finish, |block| {
        out.extend_from_slice(block);
        true
    });
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip's trailer needs, eight
/// bytes a step ("slicing by 8"): a byte a step ran at half deflate's speed, so the checksum
/// was half of gzip's cost. The tables are computed at compile time (8 KiB).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLES: [[u32; 256]; 8] = {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut k = 1;
        while k < 8 {
            let mut i = 0;
            while i < 256 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                i += 1;
            }
            k += 1;
        }
        t
    };
    // Constant table indices and byte-sized offsets: no bounds checks, nothing to call.
    let b = |x: u32| usize::from(x as u8);
    let mut c = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) ^ c;
        let hi = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        c = TABLES[7][b(lo)]
            ^ TABLES[6][b(lo >> 8)]
            ^ TABLES[5][b(lo >> 16)]
            ^ TABLES[4][b(lo >> 24)]
            ^ TABLES[3][b(hi)]
            ^ TABLES[2][b(hi >> 8)]
            ^ TABLES[1][b(hi >> 16)]
            ^ TABLES[0][b(hi >> 24)];
    }
    for &byte in chunks.remainder() {
        c = TABLES[0][b(c ^ u32::from(byte))] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        // Every length around the eight-byte steps, against a byte-at-a-time reference.
        let data: Vec<u8> = (0..100u32)
            .map(|i| i.wrapping_mul(2_654_435_761) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(crc32(&data[..len]), bitwise(&data[..len]), "{len}");
        }
    }

    fn bitwise(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_kept_compressor_compresses_like_a_new_one() {
        let inputs = [
            b"short".to_vec(),
            br#"{"a":"hello"}"#.repeat(20_000),
            (0..100_000u32)
                .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
                .collect(),
            Vec::new(),
        ];
        let mut out = Vec::new();
        for input in inputs.iter().chain(&inputs) {
            compress(input, &mut out);
            let deflated = &out[10..out.len() - 8];
            let back = miniz_oxide::inflate::decompress_to_vec(deflated).unwrap();
            assert_eq!(&back, input);
            assert_eq!(out[..], compressed_fresh(input)[..]);
        }
    }

    fn compressed_fresh(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];
        out.extend(miniz_oxide::deflate::compress_to_vec(input, LEVEL));
        out.extend(crc32(input).to_le_bytes());
        out.extend((input.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn the_stream_inflates_back_and_carries_its_trailer() {
        let input =
            br#"{"resourceLogs":[{"body":{"stringValue":"hello hello hello"}}]}"#.repeat(50);
        let mut out = Vec::new();
        compress(&input, &mut out);
        assert_eq!(&out[..3], &[0x1f, 0x8b, 8]);
        assert!(
            out.len() < input.len() / 5,
            "{} of {}",
            out.len(),
            input.len()
        );
        let deflated = &out[10..out.len() - 8];
        let back = miniz_oxide::inflate::decompress_to_vec(deflated).unwrap();
        assert_eq!(back, input);
        let trailer = &out[out.len() - 8..];
        assert_eq!(trailer[..4], crc32(&input).to_le_bytes());
        assert_eq!(trailer[4..], (input.len() as u32).to_le_bytes());
    }
}
