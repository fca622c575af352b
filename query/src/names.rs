//! Closed sets of names (a drift statistic, a quality figure...): one declaration gives the
//! enum, its `ALL` list, its text and its parsing, so that every list of valid names
//! (an error message, a dropdown) derives from the enum.

/// A name that is not one of a closed set; says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a {what}: expected one of {}", .valid.join(", "))]
pub struct UnknownName {
    /// What the name should have named (`drift statistic`, `quality statistic`...).
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The valid names.
    pub valid: Vec<String>,
}

/// Declares a unit enum whose variants each have a fixed name:
///
/// ```text
/// named_enum! {
///     /// docs
///     pub enum Show("quality series selection") {
///         /// docs
///         Both = "both",
///     }
/// }
/// ```
///
/// It derives `Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash` and adds `ALL` (the
/// variants in declaration order), `as_str`, `Display`, `FromStr` (an [`UnknownName`]
/// listing the valid names) and serde as the name.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The name, as the JSON output and the parsers spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| $crate::names::UnknownName {
                    what: $what,
                    name: s.to_string(),
                    valid: $name::ALL.iter().map(|v| v.as_str().to_string()).collect(),
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    named_enum! {
        /// A test set.
        enum Colour("colour") {
            /// Red.
            Red = "red",
            /// Light blue.
            LightBlue = "light_blue",
        }
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::LightBlue]);
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>(), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("{:?}", c.as_str()));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), c);
        }
        let e = "blue".parse::<Colour>().unwrap_err();
        assert_eq!(e.to_string(), "\"blue\" is not a colour: expected one of red, light_blue");
    }
}
