//! Fuzzes the WAL reader: any bytes must decode to an intact prefix plus a damage report
//! (or a refusal of the header), never a panic, with offsets inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(contents) = modelwatch_store::decode_wal(data) {
        assert!(contents.valid_len as usize <= data.len().max(8));
        if let Some(d) = &contents.damage {
            assert!(d.offset as usize <= data.len());
        }
    }
});
