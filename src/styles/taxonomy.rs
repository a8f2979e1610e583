//! The classes a model outputs, in output order. The taxonomy is data (it
//! lives in `bundle.toml`); [`Taxonomy::jd2018`] is the challenge's default.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    /// Stable machine id, used in label-file headers and MQTT payloads.
    pub id: String,
    /// English display name.
    pub en: String,
    /// Chinese display name.
    pub zh: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Taxonomy(pub Vec<Class>);

impl Taxonomy {
    /// The 13 styles of the JD AI Fashion Challenge 2018, in the challenge's order.
    pub fn jd2018() -> Self {
        let rows = [
            ("sports", "sports", "运动"),
            ("casual", "casual", "休闲"),
            ("office_lady", "office lady", "OL/通勤"),
            ("japanese", "Japanese", "日系"),
            ("korean", "Korean", "韩版"),
            ("western", "Western", "欧美"),
            ("british", "British", "英伦"),
            ("girl", "girl", "少女"),
            ("lady", "lady", "名媛/淑女"),
            ("minimalist", "minimalist", "简约"),
            ("natural", "natural", "自然"),
            ("punk", "street/punk", "街头/朋克"),
            ("ethnic", "ethnic", "民族"),
        ];
        Self(
            rows.iter()
                .map(|(id, en, zh)| Class {
                    id: id.to_string(),
                    en: en.to_string(),
                    zh: zh.to_string(),
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|c| c.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.id.as_str())
    }
}
