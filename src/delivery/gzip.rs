//! gzip (RFC 1952) around raw deflate from `miniz_oxide`: a 10-byte header, the deflate
//! stream, the CRC-32 of the input and its length. The framing is a fixed format of a few
//! lines; the deflate is the well-kept crate's. Level 1: network outputs compress on their own
//! thread, but the CPU they spend is the function's, and level 1 already removes most of the
//! redundancy of JSON telemetry (see `make bench` for the ratio).

/// The deflate level used: fast, most of the gain.
pub const LEVEL: u8 = 1;

/// Writes `input`, gzipped, to `out` (cleared first). Never inlined: the compressor's state
/// makes a large stack frame, and a frame is touched in full (stack probes) when its function
/// is entered, so inlined into the sender's loop it cost every sender thread about 70 KiB of
/// RSS even with compression off.
#[inline(never)]
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // ID1 ID2, CM = deflate, no flags, no mtime, XFL 4 (fastest), OS 3 (Unix).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(input, LEVEL));
    out.extend_from_slice(&crc32(input).to_le_bytes());
    // ISIZE: the input's length modulo 2^32, as the format says.
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip's trailer needs.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
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
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
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
