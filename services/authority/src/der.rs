//! A strict-DER walk: every length in its shortest form, no indefinite lengths, every nested
//! value exactly filling its parent, BOOLEANs 0x00/0xFF and INTEGERs without redundant leading
//! bytes. Parsers accept BER forms; requests the ACA signs must have one encoding only.

/// Checks that `bytes` is exactly one DER value with strict encodings throughout.
pub fn strict(bytes: &[u8]) -> Result<(), String> {
    let used = value(bytes, 0)?;
    if used != bytes.len() {
        return Err(format!("{} bytes after the value", bytes.len() - used));
    }
    Ok(())
}

const MAX_DEPTH: usize = 32;

/// Checks one TLV at the start of `b`; returns its total length.
fn value(b: &[u8], depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let tag = *b.first().ok_or("missing tag")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not used here".into());
    }
    let first = *b.get(1).ok_or("missing length")?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else if first == 0x80 {
        return Err("indefinite length".into());
    } else {
        let n = (first & 0x7f) as usize;
        if n > 4 {
            return Err("length of more than 4 bytes".into());
        }
        let bytes = b.get(2..2 + n).ok_or("truncated length")?;
        if bytes[0] == 0 {
            return Err("length with a leading zero byte".into());
        }
        let len = bytes.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize);
        if len < 0x80 {
            return Err("long-form length for a short value".into());
        }
        (len, 2 + n)
    };
    let content = b
        .get(header..header + len)
        .ok_or("length beyond the data")?;
    if tag & 0x20 != 0 {
        // constructed: its contents are a run of values, exactly
        let mut at = 0;
        while at < content.len() {
            at += value(&content[at..], depth + 1)?;
        }
    } else {
        match tag {
            0x01 if len != 1 || (content[0] != 0 && content[0] != 0xff) => {
                return Err("BOOLEAN not 0x00 or 0xFF".into());
            }
            0x02 if len == 0 => return Err("empty INTEGER".into()),
            0x02 if len > 1
                && ((content[0] == 0 && content[1] & 0x80 == 0)
                    || (content[0] == 0xff && content[1] & 0x80 != 0)) =>
            {
                return Err("INTEGER with a redundant leading byte".into());
            }
            _ => {}
        }
    }
    Ok(header + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_forms_only() {
        assert!(strict(&[0x30, 0x00]).is_ok());
        assert!(strict(&[0x30, 0x03, 0x02, 0x01, 0x05]).is_ok());
        assert!(strict(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05]).is_err());
        assert!(strict(&[0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00]).is_err());
        assert!(strict(&[0x02, 0x02, 0x00, 0x05]).is_err());
        assert!(strict(&[0x02, 0x02, 0x00, 0x85]).is_ok());
        assert!(strict(&[0x01, 0x01, 0x01]).is_err());
        assert!(strict(&[0x01, 0x01, 0xff]).is_ok());
        assert!(strict(&[0x30, 0x03, 0x02, 0x01]).is_err());
        assert!(strict(&[0x30, 0x00, 0x00]).is_err());
    }
}
