//! Text in the database's encoding, the engine's UTF-8, and the way between them.
//!
//! The engine works on UTF-8 and reports offsets in characters. A database may use any server
//! encoding PostgreSQL supports (LATIN1, EUC_JP, SQL_ASCII, ...), so text never reaches Rust as
//! a `&str` straight from a datum: [`Note`] takes the stored bytes, [`Note::to_utf8`] converts
//! them with PostgreSQL's own conversion (no copy in a UTF8 database), and results go back in
//! the server encoding ([`DbJsonb`], [`DbText`]). Offsets stay in characters of the text as
//! the database sees it, so `substr(note, start + 1, end - start) = word` holds in every
//! encoding. In SQL_ASCII PostgreSQL does not know what bytes over 127 mean, so such text is
//! refused (22021) rather than guessed at.

use std::borrow::Cow;
use std::ffi::CStr;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum, IntoDatum, UnboxDatum};
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use biomed_ner_engine::Entity;
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::error::raise;

/// A text argument as stored: bytes in the server encoding (detoasted, not copied).
#[derive(Clone, Copy)]
pub struct Note<'a>(pub &'a [u8]);

impl<'a> FromDatum for Note<'a> {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // Safety: a non-null datum of a text-like type is a varlena; detoasting returns one.
        unsafe {
            let varlena = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            Some(Note(pgrx::varlena::varlena_to_byte_slice(varlena)))
        }
    }
}

// Safety: array elements of text are inline varlenas (never toasted), read in place.
unsafe impl UnboxDatum for Note<'_> {
    type As<'src>
        = Note<'src>
    where
        Self: 'src;
    unsafe fn unbox<'src>(datum: Datum<'src>) -> Note<'src>
    where
        Self: 'src,
    {
        unsafe { Note(pgrx::varlena::varlena_to_byte_slice(datum.sans_lifetime().cast_mut_ptr())) }
    }
}

/// Takes an argument through its FromDatum, as pgrx does for its own text types.
macro_rules! arg_via_from_datum {
    ($($t:ident),*) => {$(
        // Safety: the argument is read by the type's FromDatum, which checks for NULL.
        unsafe impl<'fcx> ArgAbi<'fcx> for $t<'fcx> {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null")) }
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum().into() }
            }
        }
    )*};
}
arg_via_from_datum!(Note, JsonbArg);

/// Returns a value through its IntoDatum, as pgrx does for its own types.
macro_rules! box_ret_via_into_datum {
    ($($t:ty),*) => {$(
        // Safety: the datum built by into_datum is returned to the function's caller.
        unsafe impl BoxRet for $t {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
                match self.into_datum() {
                    Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
                    None => fcinfo.return_null(),
                }
            }
        }
    )*};
}
box_ret_via_into_datum!(DbJsonb, DbJsonbText, DbText);

/// Maps a Rust type to the SQL type it is read from and written as.
macro_rules! sql_type {
    ($($t:ty => $ident:literal as $sql:literal),*) => {$(
        // Safety: the type's FromDatum/IntoDatum read and write exactly this SQL type.
        unsafe impl SqlTranslatable for $t {
            const TYPE_IDENT: &'static str = concat!(module_path!(), "::", $ident);
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal($sql)));
        }
    )*};
}
sql_type!(
    Note<'_> => "Note" as "text",
    JsonbArg<'_> => "JsonbArg" as "jsonb",
    DbJsonb => "DbJsonb" as "jsonb",
    DbJsonbText => "DbJsonbText" as "jsonb",
    DbText => "DbText" as "text"
);

impl IntoDatum for Note<'_> {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(bytes_to_text(self.0))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTOID
    }
    fn is_compatible_with(other: pg_sys::Oid) -> bool {
        [pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID].contains(&other)
    }
}

/// A note converted to UTF-8 for the engine, with what is needed to give offsets back in
/// characters of the database's text.
pub struct Utf8Note<'a> {
    pub text: Cow<'a, str>,
    /// `map[i]` is the database character holding UTF-8 character `i` (one entry more than the
    /// UTF-8 text has characters); `None` where the two count alike, as in every encoding whose
    /// characters each map to one code point.
    map: Option<Vec<usize>>,
}

impl Utf8Note<'_> {
    /// The note's length in the database's characters.
    pub fn db_chars(&self) -> usize {
        match &self.map {
            Some(map) => map.last().map_or(0, |&c| c),
            None => self.text.chars().count(),
        }
    }

    /// The code point of [`Self::text`] where database character `offset` begins (the text's
    /// length for `offset` = [`Self::db_chars`]), for offsets the caller checked.
    pub fn code_point(&self, offset: usize) -> usize {
        match &self.map {
            Some(map) => map.partition_point(|&c| c < offset),
            None => offset,
        }
    }

    /// `entities` of this note with their spans in the database's characters (unchanged where
    /// both count alike). A span starting or ending inside a database character that became
    /// several code points grows to the whole character, and `word` stays the text of the span.
    pub fn in_database_chars(&self, entities: Vec<Entity>) -> Vec<Entity> {
        let Some(map) = &self.map else { return entities };
        let chars: Vec<char> = self.text.chars().collect();
        // The map never decreases: the code points of database characters [s, e) are one run.
        let run = |s: usize, e: usize| map.partition_point(|&c| c < s)..map[..chars.len()].partition_point(|&c| c < e);
        entities
            .into_iter()
            .map(|mut e| {
                let start = map[e.start.min(chars.len())];
                let end = map[e.end.max(e.start + 1).min(chars.len()) - 1] + 1;
                e.word = chars[run(start, end)].iter().collect();
                (e.start, e.end) = (start, end);
                e
            })
            .collect()
    }
}

fn server_encoding() -> i32 {
    // Safety: reads the database's encoding, set at backend start.
    unsafe { pg_sys::GetDatabaseEncoding() }
}

pub fn database_is_utf8() -> bool {
    server_encoding() == pg_sys::pg_enc::PG_UTF8 as i32
}

/// The database's encoding by name (`UTF8`, `LATIN1`, ...).
pub fn database_encoding() -> String {
    // Safety: returns a static C string.
    unsafe { CStr::from_ptr(pg_sys::GetDatabaseEncodingName()) }.to_string_lossy().into_owned()
}

fn not_in_repertoire(detail: String, function: &'static str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        detail,
        "biomed_ner reads text as Unicode: store notes in a database whose encoding PostgreSQL can convert to UTF8 \
         (UTF8, LATIN1, ...); in SQL_ASCII only 7-bit ASCII text can be read.",
        function,
    )
}

impl<'a> Note<'a> {
    /// The note as UTF-8: borrowed in a UTF8 database (and for ASCII text anywhere), converted
    /// by PostgreSQL otherwise. Text that cannot be read as Unicode raises 22021.
    pub fn to_utf8(self, function: &'static str) -> Utf8Note<'a> {
        self.to_utf8_as("text", function)
    }

    /// [`Self::to_utf8`] of an argument that errors name as `what`.
    pub fn to_utf8_as(self, what: &str, function: &'static str) -> Utf8Note<'a> {
        let bytes = self.0;
        let enc = server_encoding();
        if enc == pg_sys::pg_enc::PG_UTF8 as i32 || bytes.is_ascii() {
            return match std::str::from_utf8(bytes) {
                Ok(s) => Utf8Note { text: Cow::Borrowed(s), map: None },
                Err(e) => not_in_repertoire(
                    format!("invalid UTF-8 in {what} at byte {}", e.valid_up_to()),
                    function,
                ),
            };
        }
        if enc == pg_sys::pg_enc::PG_SQL_ASCII as i32 {
            let at = bytes.iter().position(|b| !b.is_ascii()).unwrap_or(0);
            not_in_repertoire(
                format!(
                    "{what} holds byte 0x{:02x} at byte {at}, which has no meaning in a SQL_ASCII database",
                    bytes[at]
                ),
                function,
            );
        }
        let text = convert(bytes, true, function);
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| not_in_repertoire(format!("conversion to UTF-8 failed: {e}"), function));
        // Safety: `bytes` is valid text of the server encoding (it came from the database).
        let server_chars = unsafe { pg_sys::pg_mbstrlen_with_len(bytes.as_ptr().cast(), bytes.len() as i32) } as usize;
        let map = (server_chars != text.chars().count()).then(|| char_map(bytes, function));
        Utf8Note { text: Cow::Owned(text), map }
    }
}

/// For each UTF-8 character of the converted text, the database character it comes from:
/// converts one database character at a time (only for encodings where some characters become
/// several code points).
fn char_map(bytes: &[u8], function: &'static str) -> Vec<usize> {
    let mut map = Vec::with_capacity(bytes.len() + 1);
    let (mut at, mut index) = (0, 0);
    while at < bytes.len() {
        // Safety: `at` is on a character boundary of valid server-encoded text.
        let len = (unsafe { pg_sys::pg_mblen(bytes[at..].as_ptr().cast()) } as usize).max(1);
        let one = convert(&bytes[at..(at + len).min(bytes.len())], true, function);
        let code_points = String::from_utf8_lossy(&one).chars().count();
        map.extend(std::iter::repeat_n(index, code_points));
        at += len;
        index += 1;
    }
    map.push(index);
    map
}

/// Converts `bytes` from the server encoding to UTF-8 (`to_utf8`) or back; a character with no
/// equivalent raises 22021.
fn convert(bytes: &[u8], to_utf8: bool, function: &'static str) -> Vec<u8> {
    let utf8 = pg_sys::pg_enc::PG_UTF8 as i32;
    let len = bytes.len() as i32;
    // PostgreSQL's conversions read a NUL-terminated string of `len` bytes.
    let mut owned = Vec::with_capacity(bytes.len() + 1);
    owned.extend_from_slice(bytes);
    owned.push(0);
    let ptr = owned.as_ptr() as *const std::ffi::c_char;
    pgrx::PgTryBuilder::new(|| {
        // Safety: `ptr` points at `len` bytes and a NUL; the result is `ptr` itself when no
        // conversion is needed, else a palloc'd NUL-terminated string.
        let out = unsafe {
            if to_utf8 {
                pg_sys::pg_server_to_any(ptr, len, utf8)
            } else {
                pg_sys::pg_any_to_server(ptr, len, utf8)
            }
        };
        // Safety: as above, NUL-terminated.
        unsafe { CStr::from_ptr(out) }.to_bytes().to_vec()
    })
    .catch_others(|e| {
        let message = match &e {
            pgrx::pg_sys::panic::CaughtError::PostgresError(r)
            | pgrx::pg_sys::panic::CaughtError::ErrorReport(r)
            | pgrx::pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
        };
        not_in_repertoire(format!("text cannot be converted between {} and UTF8: {message}", database_encoding()), function)
    })
    .execute()
}

/// UTF-8 text in the server encoding (borrowed where nothing changes).
pub fn to_server<'a>(text: &'a str, function: &'static str) -> Cow<'a, [u8]> {
    if database_is_utf8() || text.is_ascii() {
        Cow::Borrowed(text.as_bytes())
    } else {
        Cow::Owned(convert(text.as_bytes(), false, function))
    }
}

/// Raises 54000 for a value of `len` bytes, more than PostgreSQL's 1 GB a value may hold.
pub fn check_value_size(len: usize, function: &'static str) {
    // MaxAllocSize (memutils.h), less the varlena header.
    const MAX: usize = 0x3fff_ffff - pg_sys::VARHDRSZ;
    if len > MAX {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a result of {len} bytes exceeds the {MAX} bytes a PostgreSQL value may hold"),
            "Split the note, or pass fewer entities.",
            function,
        );
    }
}

fn bytes_to_text(bytes: &[u8]) -> pg_sys::Datum {
    check_value_size(bytes.len(), "biomed_ner");
    // Safety: copies `bytes` into a new palloc'd text.
    unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(bytes.as_ptr().cast(), bytes.len() as i32)) }
}

/// A jsonb result built from UTF-8 JSON, entered in the server encoding.
pub struct DbJsonb(pub serde_json::Value);

impl IntoDatum for DbJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // The entities of a long note take a while to write and to parse (about 0.5 s for a
        // 1,000,000-character note), neither of which checks for interrupts: check between.
        pgrx::check_for_interrupts!();
        let json = serde_json::to_string(&self.0).expect("a serde_json value serialises");
        DbJsonbText(json).into_datum()
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

/// A jsonb result from JSON text in UTF-8, entered in the server encoding.
pub struct DbJsonbText(pub String);

impl IntoDatum for DbJsonbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        check_value_size(self.0.len(), "biomed_ner");
        let mut bytes = to_server(&self.0, "biomed_ner").into_owned();
        bytes.push(0);
        drop(self.0);
        pgrx::check_for_interrupts!();
        // Safety: jsonb_in reads a NUL-terminated string in the server encoding.
        unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(bytes.as_ptr()))]) }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

/// A jsonb argument as jsonb writes it (`jsonb_out`: bytes in the server encoding), so that
/// the caller converts it like a note and reads only the keys it needs: no number is rounded
/// and no other value is parsed.
pub struct JsonbArg<'a>(pub &'a [u8]);

impl FromDatum for JsonbArg<'_> {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // Safety: a non-null jsonb datum; jsonb_out returns a palloc'd NUL-terminated string
        // that lives as long as the call's memory context.
        unsafe {
            let text = pgrx::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(datum)])?;
            Some(JsonbArg(CStr::from_ptr(text.cast_mut_ptr()).to_bytes()))
        }
    }
}

/// A text result from UTF-8, written in the server encoding.
pub struct DbText(pub String);

impl IntoDatum for DbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(bytes_to_text(&to_server(&self.0, "biomed_ner")))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTOID
    }
}
