//! The merged view against a model: the stored map with the writes applied.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const CF: &str = "entries";

/// Short keys from a small alphabet, so that writes hit stored keys often.
fn key(rng: &mut StdRng) -> Vec<u8> {
    (0..rng.random_range(0..4)).map(|_| rng.random_range(b'a'..=b'd')).collect()
}

fn scan(stored: &BTreeMap<Vec<u8>, Vec<u8>>, from: &[u8]) -> Vec<Result<KeyValue, String>> {
    stored.range(from.to_vec()..).map(|(k, v)| Ok((k.clone().into_boxed_slice(), v.clone().into_boxed_slice()))).collect()
}

#[test]
fn the_merged_scan_and_get_equal_the_store_with_the_writes_applied() {
    let seed = rand::random::<u64>();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..500 {
        let mut stored = BTreeMap::new();
        for _ in 0..rng.random_range(0..12) {
            stored.insert(key(&mut rng), vec![rng.random::<u8>()]);
        }
        let (mut pending, mut model) = (Pending::default(), stored.clone());
        for _ in 0..rng.random_range(0..12) {
            let k = key(&mut rng);
            if rng.random_bool(0.4) {
                pending.delete(CF, &k);
                model.remove(&k);
            } else {
                let v = vec![rng.random::<u8>()];
                pending.put(CF, &k, &v);
                model.insert(k, v);
            }
        }
        let from = key(&mut rng);
        let merged: Vec<_> = Merged::new(scan(&stored, &from).into_iter(), pending.from(CF, &from)).collect::<Result<_, _>>().unwrap();
        let want: Vec<KeyValue> = model.range(from.clone()..).map(|(k, v)| (k.clone().into(), v.clone().into())).collect();
        assert_eq!(merged, want, "seed {seed}, round {round}, from {from:?}");
        let k = key(&mut rng);
        let got = pending.get(CF, &k).map_or(stored.get(&k).map(|v| v.as_slice()), |v| v);
        assert_eq!(got, model.get(&k).map(|v| v.as_slice()), "seed {seed}, round {round}, key {k:?}");
    }
}

#[test]
fn a_store_error_is_passed_on_and_other_families_are_apart() {
    let mut pending = Pending::default();
    pending.put("inodes", b"a", b"1");
    assert_eq!(pending.get(CF, b"a"), None, "another family's write is not seen");
    assert!(pending.from(CF, b"").is_empty());
    pending.delete(CF, b"b");
    let store = vec![Ok((b"a".to_vec().into_boxed_slice(), b"x".to_vec().into_boxed_slice())), Err("disk")];
    let got: Vec<_> = Merged::new(store.into_iter(), pending.from(CF, b"")).collect();
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[1], Err("disk")));
    let writes: Vec<_> = pending.writes().collect();
    assert_eq!(writes, vec![(CF, &b"b"[..], None), ("inodes", &b"a"[..], Some(&b"1"[..]))]);
}
