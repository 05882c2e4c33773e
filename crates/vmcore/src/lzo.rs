//! A bounds-checked LZO1X decompressor, written from the format description
//! in the kernel's `Documentation/staging/lzo.rst`.
//!
//! makedumpfile's `-l` pages are LZO1X streams. The pure-Rust crates
//! available panic (integer overflow, out-of-range indexing) on damaged
//! input, and a reader must never panic on a corrupt page, so this one
//! checks every read and write and returns an error instead.
//!
//! An instruction either copies literals from the input or copies a match
//! from earlier output, and the two low bits of most instructions (the
//! "state") say how many literals (0–3) follow. The meaning of opcodes
//! 0–15 depends on that state: after no literals they start a long literal
//! run; after 1–3 literals they are a 2-byte match within 1 KiB; after a
//! run of 4 or more they are a 3-byte match 2–3 KiB back.

/// Decompresses an LZO1X stream whose output is at most `max_out` bytes.
pub fn decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, &'static str> {
    let mut d = Decoder {
        input,
        ip: 0,
        out: Vec::with_capacity(max_out),
        max_out,
    };
    d.run()?;
    Ok(d.out)
}

struct Decoder<'a> {
    input: &'a [u8],
    ip: usize,
    out: Vec<u8>,
    max_out: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.input.get(self.ip).ok_or("input overrun")?;
        self.ip += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, &'static str> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(usize::from(u16::from_le_bytes([lo, hi])))
    }

    /// A length continued in following bytes: 255 per zero byte, plus the
    /// first non-zero byte.
    fn extended_length(&mut self) -> Result<usize, &'static str> {
        let mut zeros = 0usize;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return zeros
                    .checked_mul(255)
                    .and_then(|z| z.checked_add(usize::from(b)))
                    .ok_or("length overflow");
            }
            zeros += 1;
            if zeros > self.max_out / 255 + 1 {
                return Err("length overrun");
            }
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), &'static str> {
        let end = self.ip.checked_add(n).ok_or("input overrun")?;
        let src = self.input.get(self.ip..end).ok_or("input overrun")?;
        if self.out.len() + n > self.max_out {
            return Err("output overrun");
        }
        self.out.extend_from_slice(src);
        self.ip = end;
        Ok(())
    }

    fn copy_match(&mut self, distance: usize, len: usize) -> Result<(), &'static str> {
        if distance == 0 || distance > self.out.len() {
            return Err("lookbehind overrun");
        }
        if self.out.len() + len > self.max_out {
            return Err("output overrun");
        }
        let start = self.out.len() - distance;
        for i in 0..len {
            let b = self.out[start + i];
            self.out.push(b);
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), &'static str> {
        // Literal-run state: 0 (none), 1-3, or 4 (a run of four or more).
        let mut state = 0usize;
        let first = *self.input.first().ok_or("empty input")?;
        if first > 17 {
            self.ip = 1;
            let n = usize::from(first - 17);
            self.literals(n)?;
            state = n.min(4);
        }
        loop {
            let inst = self.byte()?;
            let (distance, len, next): (usize, usize, usize);
            match inst {
                0..=15 if state == 0 => {
                    let l = usize::from(inst & 15);
                    let l = if l == 0 {
                        15 + self.extended_length()?
                    } else {
                        l
                    };
                    self.literals(l + 3)?;
                    state = 4;
                    continue;
                }
                0..=15 => {
                    let h = usize::from(self.byte()?);
                    let d = usize::from((inst >> 2) & 3);
                    if state < 4 {
                        (distance, len) = ((h << 2) + d + 1, 2);
                    } else {
                        (distance, len) = ((h << 2) + d + 2049, 3);
                    }
                    next = usize::from(inst & 3);
                }
                16..=31 => {
                    let l = usize::from(inst & 7);
                    let l = if l == 0 {
                        7 + self.extended_length()?
                    } else {
                        l
                    };
                    let v = self.le16()?;
                    let d = 16384 + (usize::from(inst & 8) << 11) + (v >> 2);
                    if d == 16384 {
                        // The end-of-stream marker.
                        return if self.ip == self.input.len() {
                            Ok(())
                        } else {
                            Err("data after end of stream")
                        };
                    }
                    (distance, len, next) = (d, l + 2, v & 3);
                }
                32..=63 => {
                    let l = usize::from(inst & 31);
                    let l = if l == 0 {
                        31 + self.extended_length()?
                    } else {
                        l
                    };
                    let v = self.le16()?;
                    (distance, len, next) = ((v >> 2) + 1, l + 2, v & 3);
                }
                64..=127 => {
                    let h = usize::from(self.byte()?);
                    let d = usize::from((inst >> 2) & 7);
                    (distance, len, next) = (
                        (h << 3) + d + 1,
                        3 + usize::from((inst >> 5) & 1),
                        usize::from(inst & 3),
                    );
                }
                128..=255 => {
                    let h = usize::from(self.byte()?);
                    let d = usize::from((inst >> 2) & 7);
                    (distance, len, next) = (
                        (h << 3) + d + 1,
                        5 + usize::from((inst >> 5) & 3),
                        usize::from(inst & 3),
                    );
                }
            }
            self.copy_match(distance, len)?;
            self.literals(next)?;
            state = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, seed: u64) -> Vec<u8> {
        // Text-like data with repeats at many distances.
        let mut s = seed;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if s % 3 == 0 && v.len() > 64 {
                let back = (s as usize >> 8) % v.len().min(40_000) + 1;
                let len = (s as usize >> 24) % 300 + 1;
                for _ in 0..len {
                    let b = v[v.len() - back];
                    v.push(b);
                }
            } else {
                v.push(b"abcdefgh \n0123"[(s >> 40) as usize % 14]);
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn round_trips_streams_from_an_independent_compressor() {
        for (i, n) in [1usize, 3, 4, 17, 4096, 4096, 65_536]
            .into_iter()
            .enumerate()
        {
            let data = sample(n, 0x9e37_79b9 + i as u64);
            let packed = lzokay_native::compress(&data).unwrap();
            assert_eq!(decompress(&packed, n).unwrap(), data, "length {n}");
        }
        let zeros = vec![0u8; 4096];
        assert_eq!(
            decompress(&lzokay_native::compress(&zeros).unwrap(), 4096).unwrap(),
            zeros
        );
    }

    #[test]
    fn a_bare_end_marker_is_an_empty_stream() {
        // 17 opens with an instruction (the end marker), not literals.
        assert_eq!(decompress(&[0x11, 0, 0], 16), Ok(vec![]));
        assert_eq!(
            decompress(&[0x11, 0, 0, 0], 16),
            Err("data after end of stream")
        );
        assert_eq!(decompress(&[], 16), Err("empty input"));
    }

    #[test]
    fn long_runs_of_zero_length_bytes_are_bounded() {
        // A literal run whose length continues in zero bytes: with 1000
        // bytes of output allowed, four zero bytes may still be a length
        // (the input then runs out), five may not.
        let stream = |zeros: usize| {
            let mut s = vec![0u8; 1 + zeros];
            s.push(1);
            s
        };
        assert_eq!(decompress(&stream(4), 1000), Err("input overrun"));
        assert_eq!(decompress(&stream(5), 1000), Err("length overrun"));
    }

    #[test]
    fn a_short_match_after_a_long_literal_run_reaches_2k_back() {
        // 2100 literals (instruction 0 with an extended length), then
        // opcode 0..15 after a run of four or more: a 3-byte match
        // (h << 2) + d + 2049 back, then one literal, then the end marker.
        let lits: Vec<u8> = (0..2100u32).map(|i| (i * 7 % 251) as u8).collect();
        // 2100 = 3 + 15 + 255 * 8 + 42
        let mut s = vec![0x00];
        s.extend_from_slice(&[0; 8]);
        s.push(42);
        s.extend_from_slice(&lits);
        s.extend_from_slice(&[0x05, 0x01]); // d = 1, one literal follows; h = 1
        s.push(b'!');
        s.extend_from_slice(&[0x11, 0, 0]);
        let mut want = lits.clone();
        let back = (1 << 2) + 1 + 2049;
        for _ in 0..3 {
            let b = want[want.len() - back];
            want.push(b);
        }
        want.push(b'!');
        assert_eq!(decompress(&s, 4096).unwrap(), want);
    }

    #[test]
    fn damaged_streams_are_errors_not_panics() {
        let data = sample(4096, 7);
        let packed = lzokay_native::compress(&data).unwrap();
        for cut in 0..packed.len() {
            assert!(decompress(&packed[..cut], 4096).is_err(), "cut at {cut}");
        }
        let mut flips = 0;
        for i in 0..packed.len() {
            let mut bad = packed.clone();
            bad[i] ^= 0x5a;
            if decompress(&bad, 4096).as_deref() != Ok(&data[..]) {
                flips += 1;
            }
        }
        assert!(flips > packed.len() / 2);
        assert_eq!(decompress(&packed, 100), Err("output overrun"));
    }
}
