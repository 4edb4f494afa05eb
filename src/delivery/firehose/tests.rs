use super::*;

#[test]
fn base64_is_the_standard_alphabet_padded() {
    // RFC 4648's test vectors.
    for (raw, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        let mut out = Vec::new();
        base64(raw.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), encoded);
        assert_eq!(base64_len(raw.len()), encoded.len());
    }
    let mut out = Vec::new();
    base64(&[0xfb, 0xff, 0xfe], &mut out);
    assert_eq!(out, b"+//+");
}

#[test]
fn lines_are_packed_whole_into_records() {
    let line = |n: usize| {
        let mut l = vec![b'x'; n - 1];
        l.push(b'\n');
        l
    };
    let mut body = Vec::new();
    for _ in 0..5 {
        body.extend(line(100 * 1024));
    }
    body.extend(line(RECORD_BYTES + 1));
    body.extend(line(10));
    let (records, oversize) = records(&body, false);
    assert_eq!(oversize, 1);
    // 2 + 2 + 1 lines of 100 KiB (a third would pass 256 KiB), the short one with the last.
    let sizes: Vec<usize> = records.iter().map(Vec::len).collect();
    assert_eq!(sizes, [200 * 1024, 200 * 1024, 100 * 1024 + 10]);
    assert!(records.iter().all(|r| r.ends_with(b"\n")));
    let joined: Vec<u8> = records.concat();
    assert_eq!(joined.len(), body.len() - (RECORD_BYTES + 1));
}

#[test]
fn gzipped_records_are_gzip_members_of_the_lines() {
    let body = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
    let (records, _) = records(&body, true);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.get(..2), Some(&[0x1f, 0x8b][..]));
    assert!(record.len() < body.len() / 4);
}

#[test]
fn a_call_body_is_the_put_record_batch_request() {
    let mut out = Vec::new();
    call_body("my-stream", &[b"{\"a\":1}\n", b"x"], &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "DeliveryStreamName": "my-stream",
            "Records": [{"Data": "eyJhIjoxfQo="}, {"Data": "eA=="}],
        })
    );
}

#[test]
fn failed_records_are_read_from_the_answer() {
    let ok = br#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"a"},{"RecordId":"b"}]}"#;
    assert!(failed(ok, 2).is_empty());
    let some = br#"{"FailedPutCount":2,"RequestResponses":[{"ErrorCode":"ServiceUnavailableException","ErrorMessage":"Slow down."},{"RecordId":"b"},{"ErrorCode":"InternalFailure"}]}"#;
    assert_eq!(failed(some, 3), [0, 2]);
    // A count without a list that matches: every record again.
    assert_eq!(failed(br#"{"FailedPutCount":1}"#, 3), [0, 1, 2]);
    // Not an answer at all (a proxy's "OK"): taken as accepted, as any 2xx.
    assert!(failed(b"OK", 3).is_empty());
}
