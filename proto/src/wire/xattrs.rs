//! Extended attributes (`/v1/xattr...`): names in the `user.`, `trusted.`
//! and `security.` namespaces with binary values, under Linux's limits.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::InodeId;
use crate::wire::namespace::NodeRef;

/// Longest name, namespace prefix included (Linux's `XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest value (Linux's `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Most bytes of names per inode, each with its NUL (`XATTR_LIST_MAX`), so
/// that any inode's list fits one `listxattr` buffer.
pub const XATTR_LIST_MAX: usize = 65536;

/// A value: any bytes, base64 (standard alphabet, padded) in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XattrBytes(pub Vec<u8>);

impl Serialize for XattrBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for XattrBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // Checked before decoding: base64 of the largest value, and padding.
        if text.len() > XATTR_SIZE_MAX.div_ceil(3) * 4 + 4 {
            return Err(serde::de::Error::custom("the value is over 64 KiB"));
        }
        STANDARD.decode(text.as_bytes()).map(XattrBytes).map_err(|e| serde::de::Error::custom(format!("the value is not base64: {e}")))
    }
}

/// Query of `GET /v1/xattr` (`name` given) and `GET /v1/xattrs` (the
/// names): the inode by `path` or `inode`, as [`NodeRef`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<InodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl XattrQuery {
    pub fn node(&self) -> NodeRef {
        NodeRef { path: self.path.clone(), inode: self.inode }
    }
}

/// `GET /v1/xattr`: the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrValue {
    pub value: XattrBytes,
}

/// `GET /v1/xattrs`: the names the caller may see, sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrNames {
    pub names: Vec<String>,
}

/// What a set requires of the name (setxattr's flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XattrSetMode {
    /// Made or replaced.
    #[default]
    Either,
    /// Must not exist yet (`XATTR_CREATE`: EEXIST).
    Create,
    /// Must exist (`XATTR_REPLACE`: ENODATA).
    Replace,
}

/// `POST /v1/xattr`: sets one attribute; answers the inode's attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetXattrRequest {
    #[serde(flatten)]
    pub node: NodeRef,
    pub name: String,
    pub value: XattrBytes,
    #[serde(default)]
    pub mode: XattrSetMode,
}

/// `POST /v1/xattr/remove`: removes one attribute (ENODATA if missing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveXattrRequest {
    #[serde(flatten)]
    pub node: NodeRef,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_base64_and_bounded() {
        let r = SetXattrRequest {
            node: NodeRef { path: Some("/f".into()), inode: None },
            name: "user.a".into(),
            value: XattrBytes(vec![0, 255, 10]),
            mode: XattrSetMode::Create,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""value":"AP8K""#) && json.contains(r#""mode":"create""#), "{json}");
        assert_eq!(serde_json::from_str::<SetXattrRequest>(&json).unwrap(), r);
        let largest = format!(r#""{}""#, STANDARD.encode(vec![7u8; XATTR_SIZE_MAX]));
        assert_eq!(serde_json::from_str::<XattrBytes>(&largest).unwrap().0.len(), XATTR_SIZE_MAX);
        let over = format!(r#""{}""#, STANDARD.encode(vec![7u8; XATTR_SIZE_MAX + 10]));
        assert!(serde_json::from_str::<XattrBytes>(&over).is_err());
        assert!(serde_json::from_str::<XattrBytes>(r#""not base64!""#).is_err());
    }
}
