//! The snapshot form of a [`Machine`](super::Machine): its pairs, in key order.
//!
//! Written straight from the live map ([`ImageRef`]), so a snapshot needs no copy of the
//! state, and read back into an owned [`MachineImage`]. Keys and values are byte strings:
//! postcard writes `serde_bytes` and a sequence of `u8` alike (a varint length, then the
//! bytes), so snapshots written when the pairs were plain `Vec<u8>` sequences read the same,
//! while the bytes are copied at once instead of through one serializer call per byte.

use serde::Deserialize;
use serde::Serialize;
use serde::ser::SerializeSeq as _;
use serde::ser::SerializeStruct as _;
use serde_bytes::Bytes;

use super::kv::Kv;

/// Everything a snapshot must carry to rebuild a [`Machine`](super::Machine).
#[derive(Debug, Default, Deserialize)]
pub struct MachineImage {
    pub pairs: Vec<ImagePair>,
}

/// One key and its value.
#[derive(Debug, Deserialize)]
pub struct ImagePair(#[serde(with = "serde_bytes")] pub Vec<u8>, #[serde(with = "serde_bytes")] pub Vec<u8>);

/// A [`MachineImage`] to be written, borrowing the map it is written from.
pub struct ImageRef<'a> {
    kv: &'a Kv,
}

impl<'a> ImageRef<'a> {
    pub(super) fn new(kv: &'a Kv) -> Self {
        Self { kv }
    }

    /// Bytes of keys and values: a lower bound on the encoded size, to size the buffer once.
    pub fn payload_bytes(&self) -> usize {
        self.kv.payload_bytes()
    }
}

impl Serialize for ImageRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Pairs<'a>(&'a Kv);
        impl Serialize for Pairs<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for (key, value) in self.0.iter() {
                    seq.serialize_element(&(Bytes::new(key), Bytes::new(value)))?;
                }
                seq.end()
            }
        }
        let mut image = serializer.serialize_struct("MachineImage", 1)?;
        image.serialize_field("pairs", &Pairs(self.kv))?;
        image.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout snapshots had before the pairs were byte strings.
    #[derive(Serialize)]
    struct SequenceImage {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    }

    fn sample() -> Kv {
        Kv::from_pairs([
            (b"a".to_vec(), vec![0u8; 300]),
            (b"b/c".to_vec(), b"v".to_vec()),
            (vec![0xff; 130], Vec::new()),
        ])
    }

    #[test]
    fn an_image_is_written_as_snapshots_always_were_and_reads_back_to_the_same_map() {
        let kv = sample();
        let written = postcard::to_stdvec(&ImageRef::new(&kv)).unwrap();
        let pairs = kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(written, postcard::to_stdvec(&SequenceImage { pairs }).unwrap());
        assert!(written.len() >= ImageRef::new(&kv).payload_bytes());

        let image: MachineImage = postcard::from_bytes(&written).unwrap();
        let read = Kv::from_pairs(image.pairs.into_iter().map(|ImagePair(k, v)| (k, v)));
        assert_eq!(read.digest_hex(), kv.digest_hex());
        assert_eq!(read.len(), kv.len());
    }
}
