//! One writer for both OTLP encodings, so the JSON and the protobuf requests are the same
//! code walking the same events and can only differ in how a field is spelled.
//!
//! A [`Field`] is a message field's JSON name and protobuf number. JSON follows OTLP's mapping
//! (lowerCamelCase names, 64-bit integers as decimal strings, enums as integers, ids as hex);
//! protobuf is the wire format written by hand: it is small and fixed (varints, fixed64s and
//! length-delimited fields), so no crate and no generated code. A nested message's length is
//! known only when it ends: a placeholder is written and patched at its close. Its size is
//! what the message usually needs (one byte by default; two for a record, three for the
//! envelope's outer messages, see [`Room`]), so content rarely moves: a shorter length moves
//! the content down (a forward copy), and a longer one, rare, copies it out and back rather
//! than move it up in place, which musl's `memmove` does a byte at a time.
//!
//! A [`Writer`] pairs the output buffer with the [`State`] that says what is open; the state
//! lives in the encoder, so a request can be opened, filled and closed across several calls.

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Protobuf => "application/x-protobuf",
        }
    }
}

/// A message field: its JSON name and its protobuf field number.
#[derive(Debug, Clone, Copy)]
pub struct Field(pub &'static str, pub u32);

/// One open frame: what it is, and (for JSON's commas) whether nothing was written in it yet.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    first: bool,
}

/// The request itself, a piece written apart, a nested message whose content starts at the
/// offset (after its length placeholder of `room` bytes), or a repeated field whose elements
/// get placeholders of `room` bytes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Root,
    Fragment,
    Nested { start: usize, room: Room },
    List { field: Field, room: Room },
}

/// Bytes reserved for a nested message's length: the length's varint fits in one byte below
/// 128, two below 16 KiB, three below 2 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// None: the length was known and written when the message opened.
    Exact = 0,
    /// Attributes, values: most are short.
    Small = 1,
    /// A log record, a span, a metric, a structured body.
    Record = 2,
    /// The envelope's resource and scope messages, which hold a whole request.
    Envelope = 3,
}

impl Kind {
    fn open(self) -> Frame {
        Frame {
            kind: self,
            first: true,
        }
    }
}

/// What is open in one buffer.
#[derive(Debug, Clone)]
pub struct State {
    encoding: Encoding,
    frames: Vec<Frame>,
}

/// A position to go back to (see [`Writer::reset`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    len: usize,
    first: bool,
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

impl State {
    /// Nothing open yet: [`Writer::begin`] opens the request.
    pub fn new(encoding: Encoding) -> State {
        State {
            encoding,
            frames: Vec::new(),
        }
    }

    /// Fields written apart, to be spliced into a message with [`Writer::splice_fields`].
    pub fn fragment(encoding: Encoding) -> State {
        State {
            encoding,
            frames: vec![Kind::Fragment.open()],
        }
    }

    /// Elements of a repeated field written apart ([`Writer::splice_list`]).
    pub fn list_fragment(encoding: Encoding, field: Field) -> State {
        State {
            encoding,
            frames: vec![
                Kind::List {
                    field,
                    room: Room::Small,
                }
                .open(),
            ],
        }
    }

    pub fn on<'a>(&'a mut self, out: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { state: self, out }
    }

    /// Starts over in a new buffer with the same shape (a fragment stays a fragment).
    pub fn restart(&mut self) {
        let shape = match self.frames.first().map(|f| f.kind) {
            Some(kind @ (Kind::Fragment | Kind::List { .. })) => Some(kind.open()),
            _ => None,
        };
        self.frames.clear();
        self.frames.extend(shape);
    }
}

/// A buffer being written, with what is open in it.
pub struct Writer<'a> {
    state: &'a mut State,
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn json(&self) -> bool {
        self.state.encoding == Encoding::Json
    }

    /// Opens the request (JSON's outer brace).
    pub fn begin(&mut self) {
        self.state.frames.clear();
        self.state.frames.push(Kind::Root.open());
        if self.json() {
            self.out.push(b'{');
        }
    }

    /// Closes everything still open, the request last.
    pub fn end(&mut self) {
        while !self.state.frames.is_empty() {
            match self.state.frames.last().map(|f| f.kind) {
                Some(Kind::List { .. }) => self.close_list(),
                _ => self.close(),
            }
        }
    }

    /// JSON: the separating comma and `"name":`. Protobuf: the tag.
    fn key(&mut self, field: Field, wire_type: u32) {
        if self.json() {
            self.comma();
            self.out.push(b'"');
            self.out.extend_from_slice(field.0.as_bytes());
            self.out.extend_from_slice(b"\":");
        } else {
            varint(
                u64::from(field.1) << 3 | u64::from(wire_type),
                &mut *self.out,
            );
        }
    }

    /// JSON: a comma unless this is the open frame's first member.
    fn comma(&mut self) {
        if let Some(frame) = self.state.frames.last_mut() {
            if !frame.first {
                self.out.push(b',');
            }
            frame.first = false;
        }
    }

    /// Opens a message-valued field of the open message, with `room` for its length.
    pub fn open_in(&mut self, field: Field, room: Room) {
        self.key(field, LEN);
        self.push_nested(room);
    }

    /// Opens the next element of the open repeated field.
    pub fn open_item(&mut self) {
        if self.json() {
            self.comma();
        } else if let Some(Kind::List { field, room }) = self.state.frames.last().map(|f| f.kind) {
            self.key(field, LEN);
            return self.push_nested(room);
        }
        self.push_nested(Room::Small);
    }

    fn push_nested(&mut self, room: Room) {
        if self.json() {
            self.out.push(b'{');
        } else {
            // Byte by byte: a copy of a few bytes would be a call to musl's slow memcpy.
            for _ in 0..room as u8 {
                self.out.push(0);
            }
        }
        let start = self.out.len();
        self.state.frames.push(Kind::Nested { start, room }.open());
    }

    /// Closes the open message.
    pub fn close(&mut self) {
        let json = self.json();
        match self.state.frames.pop().map(|f| f.kind) {
            Some(Kind::Nested { start, room }) if !json && room != Room::Exact => {
                patch_length(self.out, start, room as usize)
            }
            Some(Kind::Nested { .. } | Kind::Root) if json => self.out.push(b'}'),
            _ => {}
        }
    }

    /// Opens a repeated message field: [`open_item`](Self::open_item) for each element.
    pub fn open_list(&mut self, field: Field) {
        self.open_list_in(field, Room::Small);
    }

    /// The next element of the open repeated field, whose protobuf content is `len` bytes
    /// (the caller counts them, see [`len_field`]), written by `f` without a placeholder.
    pub fn item_exact<R>(&mut self, len: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        if self.json() {
            return self.item(f);
        }
        if let Some(Kind::List { field, .. }) = self.state.frames.last().map(|f| f.kind) {
            self.key(field, LEN);
        }
        self.exact(len, f)
    }

    /// A message-valued field whose protobuf content is `len` bytes, written by `f`.
    pub fn message_exact<R>(
        &mut self,
        field: Field,
        len: usize,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        if self.json() {
            return self.message(field, f);
        }
        self.key(field, LEN);
        self.exact(len, f)
    }

    fn exact<R>(&mut self, len: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        varint(len as u64, &mut *self.out);
        let start = self.out.len();
        let room = Room::Exact;
        self.state.frames.push(Kind::Nested { start, room }.open());
        let r = f(self);
        self.close();
        r
    }

    /// Opens a repeated message field whose elements are usually long (see [`Room`]).
    pub fn open_list_in(&mut self, field: Field, room: Room) {
        if self.json() {
            self.key(field, LEN);
            self.out.push(b'[');
        }
        self.state.frames.push(Kind::List { field, room }.open());
    }

    pub fn close_list(&mut self) {
        if let Some(Kind::List { .. }) = self.state.frames.last().map(|f| f.kind) {
            self.state.frames.pop();
            if self.json() {
                self.out.push(b']');
            }
        }
    }

    /// A message-valued field, written by `f`.
    pub fn message<R>(&mut self, field: Field, f: impl FnOnce(&mut Self) -> R) -> R {
        self.message_in(field, Room::Small, f)
    }

    /// A message-valued field that is usually long (see [`Room`]), written by `f`.
    pub fn message_in<R>(&mut self, field: Field, room: Room, f: impl FnOnce(&mut Self) -> R) -> R {
        self.open_in(field, room);
        let r = f(self);
        self.close();
        r
    }

    /// The next element of the open repeated field, written by `f`.
    pub fn item<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.open_item();
        let r = f(self);
        self.close();
        r
    }

    /// A repeated message field; `f` writes its elements with [`item`](Self::item).
    pub fn list<R>(&mut self, field: Field, f: impl FnOnce(&mut Self) -> R) -> R {
        self.open_list(field);
        let r = f(self);
        self.close_list();
        r
    }

    pub fn string(&mut self, field: Field, text: &str) {
        self.key(field, LEN);
        if self.json() {
            quoted(text, self.out);
        } else {
            varint(text.len() as u64, &mut *self.out);
            put(self.out, text.as_bytes());
        }
    }

    /// A string given as a JSON string literal without its closing quote (`"abc`), copied
    /// as it is into JSON; protobuf gets the text it stands for.
    pub fn string_literal(&mut self, field: Field, open_literal: &str) {
        if self.json() {
            self.key(field, LEN);
            self.out.extend_from_slice(open_literal.as_bytes());
            self.out.push(b'"');
            return;
        }
        // Unescaped straight into the field, its length patched after, as for a message.
        // The literal is at least as long as its text: its length's room always suffices.
        self.key(field, LEN);
        let inner = open_literal.strip_prefix('"').unwrap_or(open_literal);
        let room = varint_len(inner.len() as u64);
        self.out.extend_from_slice(&[0; 10][..room]);
        let start = self.out.len();
        crate::telemetry::text::unescape_into(inner, self.out);
        patch_length(self.out, start, room);
    }

    /// A `bytes` id (trace or span): lowercase hex in JSON, as OTLP's JSON mapping says.
    pub fn id(&mut self, field: Field, id: &[u8]) {
        self.key(field, LEN);
        if self.json() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            self.out.push(b'"');
            for b in id {
                self.out.push(HEX[usize::from(b >> 4)]);
                self.out.push(HEX[usize::from(b & 15)]);
            }
            self.out.push(b'"');
        } else {
            varint(id.len() as u64, &mut *self.out);
            put(self.out, id);
        }
    }

    /// A `fixed64` (times, counts).
    pub fn fixed64(&mut self, field: Field, value: u64) {
        self.fixed(field, value, value.to_le_bytes());
    }

    /// An `sfixed64` (a sum's `asInt`).
    pub fn sfixed64(&mut self, field: Field, value: i64) {
        self.fixed(field, value, value.to_le_bytes());
    }

    /// Eight bytes on the wire; a 64-bit integer is a decimal string in OTLP's JSON.
    fn fixed(&mut self, field: Field, value: impl std::fmt::Display, bytes: [u8; 8]) {
        self.key(field, FIXED64);
        if self.json() {
            self.decimal_string(value);
        } else {
            self.out.extend(bytes);
        }
    }

    /// An `int64` (an `AnyValue`'s `intValue`).
    pub fn int64(&mut self, field: Field, value: i64) {
        self.key(field, VARINT);
        if self.json() {
            self.decimal_string(value);
        } else {
            // Negative int64s are their two's complement, ten bytes long.
            varint(value as u64, &mut *self.out);
        }
    }

    /// An enum or a small unsigned integer: a number in JSON.
    pub fn number(&mut self, field: Field, value: u32) {
        self.key(field, VARINT);
        if self.json() {
            self.out.extend_from_slice(value.to_string().as_bytes());
        } else {
            varint(u64::from(value), &mut *self.out);
        }
    }

    pub fn boolean(&mut self, field: Field, value: bool) {
        self.key(field, VARINT);
        if self.json() {
            self.out
                .extend_from_slice(if value { b"true" } else { b"false" });
        } else {
            self.out.push(u8::from(value));
        }
    }

    pub fn double(&mut self, field: Field, value: f64) {
        self.key(field, FIXED64);
        if self.json() {
            json_double(value, self.out);
        } else {
            self.out.extend(value.to_le_bytes());
        }
    }

    /// A packed `repeated fixed64`.
    pub fn fixed64s(&mut self, field: Field, values: &[u64]) {
        self.packed(field, values, |w, v| w.decimal_string(v), u64::to_le_bytes);
    }

    /// A packed `repeated double`.
    pub fn doubles(&mut self, field: Field, values: &[f64]) {
        self.packed(
            field,
            values,
            |w, v| json_double(v, w.out),
            f64::to_le_bytes,
        );
    }

    /// A packed repeated field of eight-byte values: a JSON array, or one length-delimited run.
    fn packed<T: Copy>(
        &mut self,
        field: Field,
        values: &[T],
        json: impl Fn(&mut Self, T),
        bytes: impl Fn(T) -> [u8; 8],
    ) {
        self.key(field, LEN);
        if self.json() {
            self.out.push(b'[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                json(self, *v);
            }
            self.out.push(b']');
        } else {
            varint(values.len() as u64 * 8, &mut *self.out);
            for v in values {
                self.out.extend(bytes(*v));
            }
        }
    }

    fn decimal_string(&mut self, value: impl std::fmt::Display) {
        self.out
            .extend_from_slice(format!("\"{value}\"").as_bytes());
    }

    /// Fields written apart with a [`State::fragment`], into the open message.
    pub fn splice_fields(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        if self.json() {
            self.comma();
        }
        self.out.extend_from_slice(piece);
    }

    /// Elements written apart with a [`State::list_fragment`] for `field`, as that field.
    pub fn splice_list(&mut self, field: Field, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        if self.json() {
            self.key(field, LEN);
            self.out.push(b'[');
            self.out.extend_from_slice(piece);
            self.out.push(b']');
        } else {
            self.out.extend_from_slice(piece);
        }
    }

    /// Where the buffer is now, for [`reset`](Self::reset).
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            first: self.state.frames.last().is_none_or(|f| f.first),
        }
    }

    /// Takes back what was written since `mark`, in the same frame.
    pub fn reset(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        if let Some(frame) = self.state.frames.last_mut() {
            frame.first = mark.first;
        }
    }
}

/// `text` as a JSON string literal.
pub fn quoted(text: &str, out: &mut Vec<u8>) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn json_double(value: f64, out: &mut Vec<u8>) {
    if value.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &value);
    } else {
        // OTLP JSON, as protobuf's JSON mapping, spells these as strings.
        let text = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        quoted(text, out);
    }
}

/// Appends `bytes`; a short run byte by byte, as a copy of a few bytes is a call to musl's
/// `memcpy`, whose start costs more than the copy.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= 32 {
        out.extend(bytes.iter().copied());
    } else {
        out.extend_from_slice(bytes);
    }
}

/// A base-128 varint.
fn varint(value: u64, out: &mut Vec<u8>) {
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    let (bytes, n) = varint_bytes(value);
    put(out, bytes.get(..n).unwrap_or_default());
}

/// `value` as a base-128 varint: its bytes, and how many of them there are.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while let Some(byte) = bytes.get_mut(n) {
        n += 1;
        if value < 0x80 {
            *byte = value as u8;
            break;
        }
        *byte = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
    }
    (bytes, n)
}

/// Protobuf bytes of a length-delimited field numbered below 16 whose content is `len`
/// bytes: its tag, its length, the content.
pub fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of `value` as a varint.
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes the length of the message whose content starts at `start` into its placeholder
/// (the `room` bytes before `start`). A shorter length moves the content down; a longer one
/// copies the content out and back after the wider length.
fn patch_length(out: &mut Vec<u8>, start: usize, room: usize) {
    let len = out.len().saturating_sub(start);
    let (bytes, n) = varint_bytes(len as u64);
    let (Some(at), Some(bytes)) = (start.checked_sub(room), bytes.get(..n)) else {
        return;
    };
    if n <= room {
        if let Some(slot) = out.get_mut(at..at + n) {
            slot.copy_from_slice(bytes);
        }
        if n < room {
            out.copy_within(start.., at + n);
            out.truncate(at + n + len);
        }
    } else {
        let content = out.split_off(start);
        out.truncate(at);
        out.extend_from_slice(bytes);
        out.extend_from_slice(&content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: Field = Field("name", 1);
    const INNER: Field = Field("inner", 2);
    const ITEMS: Field = Field("items", 3);
    const COUNT: Field = Field("count", 4);

    fn both(f: impl Fn(&mut Writer)) -> (String, Vec<u8>) {
        let mut out = [Vec::new(), Vec::new()];
        for (encoding, out) in [Encoding::Json, Encoding::Protobuf]
            .into_iter()
            .zip(&mut out)
        {
            let mut state = State::new(encoding);
            let mut w = state.on(out);
            w.begin();
            f(&mut w);
            w.end();
        }
        let [json, proto] = out;
        (String::from_utf8(json).unwrap(), proto)
    }

    #[test]
    fn nested_messages_and_lists_in_both_encodings() {
        let (json, proto) = both(|w| {
            w.string(NAME, "a");
            w.message(INNER, |w| w.fixed64(COUNT, 7));
            w.list(ITEMS, |w| {
                w.item(|w| w.boolean(NAME, true));
                w.item(|_| {});
            });
        });
        assert_eq!(
            json,
            r#"{"name":"a","inner":{"count":"7"},"items":[{"name":true},{}]}"#
        );
        let expected: Vec<u8> = [
            &[0x0a, 1, b'a'][..],
            &[0x12, 9, 0x21, 7, 0, 0, 0, 0, 0, 0, 0],
            &[0x1a, 2, 0x08, 1],
            &[0x1a, 0],
        ]
        .concat();
        assert_eq!(proto, expected);
    }

    #[test]
    fn a_long_message_gets_a_longer_length() {
        let text = "x".repeat(300);
        let (_, proto) = both(|w| w.message(INNER, |w| w.string(NAME, &text)));
        // 0x12, len 303 as a varint (0xaf 0x02), then 0x0a, 300 (0xac 0x02), the text.
        assert_eq!(&proto[..5], &[0x12, 0xaf, 0x02, 0x0a, 0xac]);
        assert_eq!(proto.len(), 3 + 3 + 300);
    }

    #[test]
    fn lengths_are_minimal_whatever_room_was_kept() {
        for room in [Room::Small, Room::Record, Room::Envelope] {
            for size in [0, 5, 127, 128, 300, 16_383, 16_384, 40_000] {
                let text = "y".repeat(size);
                let (_, proto) = both(|w| {
                    w.message_in(INNER, room, |w| w.string(NAME, &text));
                });
                // The string's own tag and length, then the text: what the message holds.
                let content = 1 + varint_len(size as u64) + size;
                let mut expected = vec![0x12];
                varint(content as u64, &mut expected);
                expected.push(0x0a);
                varint(size as u64, &mut expected);
                expected.extend_from_slice(text.as_bytes());
                assert!(proto == expected, "room {room:?}, {size} bytes");
            }
        }
    }

    #[test]
    fn an_unescaped_literal_shorter_than_its_room_moves_down_or_not() {
        // 130 escapes of one character stand for 130 bytes written in 260: room for two.
        let literal = format!("\"{}", "\\\\".repeat(130));
        let (_, proto) = both(|w| w.string_literal(NAME, &literal));
        assert_eq!(&proto[..3], &[0x0a, 0x82, 0x01]);
        assert_eq!(proto.len(), 3 + 130);
        let literal = format!("\"{}", "\\n".repeat(70));
        let (_, proto) = both(|w| w.string_literal(NAME, &literal));
        assert_eq!(
            &proto[..2],
            &[0x0a, 70],
            "140 bytes of literal, 70 of text: one byte"
        );
        assert_eq!(proto.len(), 2 + 70);
        assert!(proto[2..].iter().all(|b| *b == b'\n'));
    }

    #[test]
    fn negative_int64s_are_ten_bytes_and_decimal_strings() {
        let (json, proto) = both(|w| w.int64(COUNT, -1));
        assert_eq!(json, r#"{"count":"-1"}"#);
        assert_eq!(proto.len(), 11);
        assert_eq!(proto[10], 0x01);
    }

    #[test]
    fn spliced_pieces_and_resets() {
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let mut piece = Vec::new();
            let mut fragment = State::list_fragment(encoding, ITEMS);
            let mut p = fragment.on(&mut piece);
            p.item(|w| w.number(COUNT, 1));
            let mark = p.mark();
            p.item(|w| w.number(COUNT, 2));
            p.reset(mark);
            let mut out = Vec::new();
            let mut state = State::new(encoding);
            let mut w = state.on(&mut out);
            w.begin();
            w.string(NAME, "n");
            w.splice_list(ITEMS, &piece);
            w.end();
            if encoding == Encoding::Json {
                assert_eq!(out, br#"{"name":"n","items":[{"count":1}]}"#);
            } else {
                assert_eq!(out, [0x0a, 1, b'n', 0x1a, 2, 0x20, 1]);
            }
        }
    }
}
