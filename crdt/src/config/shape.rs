//! A structural check of automerge change bytes before automerge parses
//! them.
//!
//! automerge 0.12 trusts parts of a change's encoding: an operation
//! counter past `u32::MAX` panics while parsing, an actor index past the
//! change's actor list panics while applying, a run-length column can
//! claim 2^60 operations (automerge then walks them all), and a compressed
//! change inflates without a bound. [`check`] reads the chunk header and
//! the operation columns that carry counters and actor indexes, and refuses
//! those shapes, so they never reach automerge; the panic guard
//! (`guard.rs`) stays behind it for everything this does not know.
//!
//! Layout (automerge's binary format, "change chunk"): magic (4 bytes),
//! checksum (4), chunk type (1: change, 2: deflated change), data length
//! (uLEB), then the data: dependencies (uLEB count, 32-byte hashes), actor
//! (uLEB length, bytes), sequence number, start op (uLEB), time (sLEB),
//! message (uLEB length, bytes), other actors (uLEB count, each uLEB length
//! and bytes), column metadata (uLEB count, each a uLEB spec and a uLEB
//! length), the columns' bytes, and extra bytes.

use std::io::Read;

use super::limits;

/// The first bytes of every automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Chunk type of a change, and of a deflated change.
const CHANGE: u8 = 1;
const DEFLATED_CHANGE: u8 = 2;

/// Every actor id fleetmesh writes is a 32-byte public key.
const ACTOR_BYTES: u64 = 32;

/// Most operation columns a change has (automerge writes about a dozen).
const COLUMNS_MAX: u64 = 64;

/// The columns checked, by spec (column id << 4 | type): actor index
/// columns (type 1), the object counter (uLEB run-length, type 2) and the
/// key and predecessor counters (delta, type 3).
const OBJ_ACTOR: u64 = 0x01;
const OBJ_COUNTER: u64 = 0x02;
const KEY_ACTOR: u64 = 0x11;
const KEY_COUNTER: u64 = 0x13;
const ACTION: u64 = 0x42;
const PRED_ACTOR: u64 = 0x71;
const PRED_COUNTER: u64 = 0x73;

/// Bit 3 of a column spec: the column is deflated (automerge refuses that
/// in a change, and so does this check).
const DEFLATE_BIT: u64 = 0x08;

/// Checks the shape of a change's bytes; `Err` says what is wrong.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    let mut input = Input(bytes);
    if input.take(4)? != MAGIC {
        return Err("not an automerge chunk".into());
    }
    input.take(4)?;
    let kind = input.take(1)?[0];
    let length = input.uleb()?;
    if u64::try_from(input.0.len()).ok() != Some(length) {
        return Err("chunk length does not match its bytes".into());
    }
    match kind {
        CHANGE => data(input),
        DEFLATED_CHANGE => {
            let inflated = inflate(input.0)?;
            data(Input(&inflated))
        }
        _ => Err(format!("chunk type {kind} is not a change")),
    }
}

/// Inflates a deflated change, refusing one that grows past
/// [`limits::CHANGE_BYTES_MAX`].
fn inflate(deflated: &[u8]) -> Result<Vec<u8>, String> {
    let bound = u64::try_from(limits::CHANGE_BYTES_MAX).unwrap_or(u64::MAX);
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(bound + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| format!("deflated change does not inflate: {error}"))?;
    if inflated.len() > limits::CHANGE_BYTES_MAX {
        return Err(format!(
            "deflated change inflates past {} bytes",
            limits::CHANGE_BYTES_MAX
        ));
    }
    Ok(inflated)
}

/// Checks a change chunk's data.
fn data(mut input: Input<'_>) -> Result<(), String> {
    let deps = input.uleb()?;
    input.take(deps.checked_mul(32).ok_or("too many dependencies")?)?;
    actor(&mut input)?;
    input.uleb()?;
    let start_op = input.uleb()?;
    if start_op == 0 || start_op > u64::from(u32::MAX) {
        return Err(format!("start op {start_op} is outside 1..=2^32-1"));
    }
    input.sleb()?;
    let message = input.uleb()?;
    input.take(message)?;
    let others = input.uleb()?;
    for _ in 0..others {
        actor(&mut input)?;
    }
    let count = input.uleb()?;
    if count > COLUMNS_MAX {
        return Err(format!("{count} columns; at most {COLUMNS_MAX}"));
    }
    let mut specs = Vec::new();
    for _ in 0..count {
        let spec = input.uleb()?;
        let length = input.uleb()?;
        if spec & DEFLATE_BIT != 0 {
            return Err("a change's columns are never deflated".into());
        }
        specs.push((spec, length));
    }
    let mut ops = 0;
    for (spec, length) in specs {
        let column = Input(input.take(length)?);
        match spec {
            OBJ_ACTOR | KEY_ACTOR | PRED_ACTOR => runs(column, |value| {
                within(value, 0, i128::from(others), "actor index")
            })?,
            OBJ_COUNTER => runs(column, counter)?,
            KEY_COUNTER | PRED_COUNTER => deltas(column, counter)?,
            ACTION => {
                ops = runs(column, |_| Ok(()))?;
                ops
            }
            _ => 0,
        };
    }
    if u128::from(start_op) + u128::from(ops) > u128::from(u32::MAX) + 1 {
        return Err("operation counters run past 2^32-1".into());
    }
    Ok(())
}

/// An actor id: exactly a key's 32 bytes.
fn actor(input: &mut Input<'_>) -> Result<(), String> {
    let length = input.uleb()?;
    if length != ACTOR_BYTES {
        return Err(format!("an actor id of {length} bytes, not {ACTOR_BYTES}"));
    }
    input.take(length)?;
    Ok(())
}

fn counter(value: i128) -> Result<(), String> {
    within(value, 0, i128::from(u32::MAX), "operation counter")
}

fn within(value: i128, low: i128, high: i128, what: &str) -> Result<(), String> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(format!("{what} {value} is outside {low}..={high}"))
    }
}

/// Walks a run-length column of uLEB values, calling `check` on each
/// distinct value; returns how many rows the column holds, at most
/// [`OPS_MAX`]. A run is an sLEB header: n > 0 repeats the next value n
/// times, n < 0 is followed by -n literal values, 0 by a count of nulls.
fn runs(mut column: Input<'_>, check: impl Fn(i128) -> Result<(), String>) -> Result<u64, String> {
    let mut rows: u64 = 0;
    while !column.0.is_empty() {
        let header = column.sleb()?;
        let count = match header {
            0 => column.uleb()?,
            1.. => {
                check(column.value(false)?)?;
                header.unsigned_abs()
            }
            _ => {
                for _ in 0..header.unsigned_abs() {
                    check(column.value(false)?)?;
                }
                header.unsigned_abs()
            }
        };
        rows = rows.saturating_add(count);
        if rows > OPS_MAX {
            return Err(format!("a column of more than {OPS_MAX} operations"));
        }
    }
    Ok(rows)
}

/// Walks a delta column (runs as in [`runs`], of sLEB differences whose
/// running sum is the value), calling `check` on the first and last value
/// of every run: values within a run move one way, so those two bound it.
fn deltas(
    mut column: Input<'_>,
    check: impl Fn(i128) -> Result<(), String>,
) -> Result<u64, String> {
    let mut current: i128 = 0;
    let mut rows: u64 = 0;
    while !column.0.is_empty() {
        let header = column.sleb()?;
        let count = header.unsigned_abs();
        let (literals, repeats) = match header {
            0 => (0, 0),
            1.. => (1, count),
            _ => (count, 1),
        };
        for _ in 0..literals {
            let delta = column.value(true)?;
            check(current + delta)?;
            current += delta * i128::from(repeats);
            check(current)?;
        }
        rows = rows.saturating_add(if header == 0 { column.uleb()? } else { count });
        if rows > OPS_MAX {
            return Err(format!("a column of more than {OPS_MAX} operations"));
        }
    }
    Ok(rows)
}

/// Most operations one change may carry: far beyond any config edit, and
/// small enough that walking them is cheap.
const OPS_MAX: u64 = 1 << 20;

/// Bytes still to read.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, count: u64) -> Result<&'a [u8], String> {
        let count = usize::try_from(count).map_err(|_| "a length past the address space")?;
        if count > self.0.len() {
            return Err("truncated".into());
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(taken)
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("a LEB128 number past 64 bits".into());
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a LEB128 number past 64 bits".into())
    }

    fn sleb(&mut self) -> Result<i64, String> {
        let mut value: i128 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            value |= i128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if byte & 0x40 != 0 {
                    value -= 1 << (shift + 7);
                }
                return i64::try_from(value).map_err(|_| "a LEB128 number past 64 bits".into());
            }
        }
        Err("a LEB128 number past 64 bits".into())
    }

    fn value(&mut self, signed: bool) -> Result<i128, String> {
        if signed {
            self.sleb().map(i128::from)
        } else {
            self.uleb().map(i128::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uleb(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A change chunk with one actor, `start_op`, and the given columns.
    fn chunk(start_op: u64, columns: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut data = vec![0, 32];
        data.extend([7; 32]);
        data.extend([1]);
        uleb(start_op, &mut data);
        data.extend([0, 0, 0]);
        uleb(columns.len() as u64, &mut data);
        for (spec, bytes) in columns {
            uleb(*spec, &mut data);
            uleb(bytes.len() as u64, &mut data);
        }
        for (_, bytes) in columns {
            data.extend(bytes);
        }
        let mut chunk = MAGIC.to_vec();
        chunk.extend([0; 4]);
        chunk.push(CHANGE);
        uleb(data.len() as u64, &mut chunk);
        chunk.extend(data);
        chunk
    }

    #[test]
    fn changes_automerge_makes_pass() {
        use automerge::transaction::Transactable;
        let mut doc = automerge::Automerge::new();
        doc.set_actor(automerge::ActorId::from(&[9; 32][..]));
        let mut tx = doc.transaction();
        let list = tx
            .put_object(automerge::ROOT, "list", automerge::ObjType::List)
            .unwrap();
        for index in 0..2_000 {
            tx.insert(&list, index, index as i64).unwrap();
        }
        tx.put(automerge::ROOT, "name", "web").unwrap();
        tx.commit();
        let mut change = doc.get_last_local_change().unwrap();
        assert_eq!(check(change.raw_bytes()), Ok(()));
        // Large changes travel deflated.
        let bytes = change.bytes().into_owned();
        assert_eq!(bytes[8], DEFLATED_CHANGE);
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn the_shapes_that_break_automerge_are_refused() {
        // An object counter past u32 (the parse panic of repro input 1).
        let mut counter = vec![1];
        uleb(u64::from(u32::MAX) + 1, &mut counter);
        assert!(check(&chunk(1, &[(OBJ_COUNTER, counter)])).is_err());
        // A key counter whose running sum goes negative.
        assert!(check(&chunk(1, &[(KEY_COUNTER, vec![1, 0x7f])])).is_err());
        // An actor index past the actor list (one actor: index 0 only).
        assert!(check(&chunk(1, &[(OBJ_ACTOR, vec![1, 1])])).is_err());
        assert_eq!(check(&chunk(1, &[(OBJ_ACTOR, vec![1, 0])])), Ok(()));
        // A run of 2^60 operations.
        let mut huge = Vec::new();
        uleb(1 << 60, &mut huge);
        let mut column = vec![];
        column.extend(&huge);
        column.push(1);
        assert!(check(&chunk(1, &[(ACTION, column)])).is_err());
        // Counters that run past u32 from the start op.
        let mut actions = Vec::new();
        uleb(10, &mut actions);
        actions.push(1);
        assert!(check(&chunk(u64::from(u32::MAX) - 5, &[(ACTION, actions)])).is_err());
        // Deflated columns, a document chunk, truncation, a lying length.
        assert!(check(&chunk(1, &[(OBJ_COUNTER | DEFLATE_BIT, vec![])])).is_err());
        let mut document = chunk(1, &[]);
        document[8] = 0;
        assert!(check(&document).is_err());
        let whole = chunk(1, &[(OBJ_ACTOR, vec![1, 0])]);
        assert!(check(&whole[..whole.len() - 1]).is_err());
        assert!(check(&[whole.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn a_deflated_change_may_not_inflate_past_the_bound() {
        use std::io::Write;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder
            .write_all(&vec![0; limits::CHANGE_BYTES_MAX + 1])
            .unwrap();
        let deflated = encoder.finish().unwrap();
        let mut bomb = MAGIC.to_vec();
        bomb.extend([0; 4]);
        bomb.push(DEFLATED_CHANGE);
        uleb(deflated.len() as u64, &mut bomb);
        bomb.extend(deflated);
        let refused = check(&bomb).unwrap_err();
        assert!(refused.contains("inflates past"), "{refused}");
    }
}
