//! Queries that only read, run so that they take no transaction id.
//!
//! pgrx's `Spi::get_one` (and every `SpiClient::update`) assigns the transaction an id even for a
//! SELECT. A parallel worker and a hot standby may not take one (the call fails there), and an
//! idle background worker would write a transaction at every round. These run through
//! `SpiClient::select`, read-only while the transaction has no id. (A function the query calls
//! may still write: the queue's batch function does when it has rows.)

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};

/// The first column of the query's first row; `None` for no row, a NULL, or an SPI error.
pub fn read_one<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect(|client| client.select(query, Some(1), args).and_then(|rows| rows.first().get_one::<T>())).ok().flatten()
}

/// The first two columns of the query's first row; `None` for an SPI error.
pub fn read_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(query: &str) -> Option<(Option<A>, Option<B>)> {
    Spi::connect(|client| client.select(query, Some(1), &[]).and_then(|rows| rows.first().get_two::<A, B>())).ok()
}
