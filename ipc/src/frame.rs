//! One frame on the wire: a 4-byte big-endian payload length, then the
//! payload, a bincode encoding of one message.
//!
//! Decoding is a pure function over a byte buffer, so it can be tested and
//! fuzzed without sockets. The length is checked against [`MAX_FRAME`] before
//! anything is allocated, and the payload is decoded with the same limit, so a
//! hostile peer can make fazt neither panic nor allocate what it claims.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::IpcError;

/// Largest payload of one frame: room for a 10 MiB fetch response
/// (`net.max_response` maximum) or an 8 MiB request body plus headers.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// Encodes `msg` as one frame (prefix + payload).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Appends `msg` as one frame to `out`; on an error `out` is as it was.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), IpcError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; PREFIX_LEN]);
    let encoded = bincode::serde::encode_into_std_write(msg, &mut *out, config())
        .map_err(|e| IpcError::Encode(e.to_string()));
    let len = out.len() - start - PREFIX_LEN;
    if let Err(e) = encoded {
        out.truncate(start);
        return Err(e);
    }
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(IpcError::FrameTooLarge { len });
    }
    out[start..start + PREFIX_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// The payload length announced by a buffer's prefix, once four bytes are there.
///
/// Errors when the announced length is over [`MAX_FRAME`], before any of the
/// payload is read.
pub fn announced_len(buf: &[u8]) -> Result<Option<usize>, IpcError> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Ok(None);
    };
    let mut len = [0u8; PREFIX_LEN];
    len.copy_from_slice(prefix);
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(IpcError::FrameTooLarge { len });
    }
    Ok(Some(len))
}

/// Decodes the first frame in `buf`.
///
/// `Ok(None)` means "not enough bytes yet"; `Ok(Some((msg, used)))` gives the
/// message and how many bytes of `buf` it took. A payload that does not decode
/// to exactly one message is an error.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, IpcError> {
    let Some(len) = announced_len(buf)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(PREFIX_LEN..PREFIX_LEN + len) else {
        return Ok(None);
    };
    let (msg, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| IpcError::Decode(e.to_string()))?;
    if used != len {
        return Err(IpcError::Decode(format!(
            "{} bytes left over after the message",
            len - used
        )));
    }
    Ok(Some((msg, PREFIX_LEN + len)))
}
