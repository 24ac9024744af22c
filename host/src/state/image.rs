//! The snapshot form of a [`Machine`](super::Machine): its pairs, in key order.
//!
//! Written straight from a map ([`ImageRef`]): a snapshot borrows an O(1) copy of the live
//! map (`Kv` shares its nodes), so nothing is copied pair by pair before it is encoded. Read
//! back into an owned [`MachineImage`]. Keys and values are byte strings:
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

impl MachineImage {
    /// Decode an image, refusing anything a snapshot of a real machine is not: bytes left
    /// over, or keys out of order or repeated (an image is written in key order). Bytes from a
    /// peer or a file never reach the machine unchecked.
    pub fn decode(bytes: &[u8]) -> Result<MachineImage, String> {
        let (image, rest): (MachineImage, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| format!("not a machine image: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the machine image", rest.len()));
        }
        if let Some(at) = image.pairs.windows(2).position(|pair| pair[0].0 >= pair[1].0) {
            return Err(format!("machine image keys out of order at pair {}", at + 1));
        }
        Ok(image)
    }

    /// Whether `bytes` decode as [`MachineImage::decode`] accepts.
    pub fn validate(bytes: &[u8]) -> Result<(), String> {
        Self::decode(bytes).map(|_| ())
    }
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

    #[test]
    fn decode_refuses_what_no_machine_wrote() {
        let image = postcard::to_stdvec(&ImageRef::new(&sample())).unwrap();
        assert_eq!(MachineImage::decode(&image).unwrap().pairs.len(), 3);
        assert!(MachineImage::decode(&[image.as_slice(), b"x"].concat()).unwrap_err().contains("after"));
        let unordered =
            postcard::to_stdvec(&SequenceImage { pairs: vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])] })
                .unwrap();
        assert!(MachineImage::decode(&unordered).unwrap_err().contains("order"));
        let repeated =
            postcard::to_stdvec(&SequenceImage { pairs: vec![(b"a".to_vec(), vec![]), (b"a".to_vec(), vec![])] })
                .unwrap();
        assert!(MachineImage::decode(&repeated).is_err());
        assert!(MachineImage::decode(&[0xff; 4096]).is_err());
    }

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
