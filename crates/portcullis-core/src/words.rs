//! Each enum's words, written once.
//!
//! [`words!`] defines a field-less enum together with the word of each
//! variant and gives it `ALL`, `WORDS`, `as_str`, `from_word` and `index`,
//! so the policy reader, the trace, the test-file reader and every front-end
//! name values the same way and no crate re-maps them by hand.

/// An enum whose values each have one word.
pub(crate) trait Words: Copy + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// Their words, in the same order.
    const WORDS: &'static [&'static str];
    /// The value's word.
    fn as_word(self) -> &'static str;
}

/// Defines a field-less enum and its words:
///
/// ```text
/// words! {
///     /// `allow` or `deny`.
///     pub enum Access {
///         /// Let it through.
///         Allow = "allow",
///         /// Stop it.
///         Deny = "deny",
///     }
/// }
/// ```
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $( $(#[$vmeta:meta])* $v:ident = $w:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $( $(#[$vmeta])* $v, )+
        }

        impl $ty {
            /// How many values there are.
            pub const COUNT: usize = [$($w),+].len();
            /// Every value, in the order the spec lists them.
            pub const ALL: [$ty; $ty::COUNT] = [$($ty::$v),+];
            /// The words of [`Self::ALL`], in the same order.
            pub const WORDS: &'static [&'static str] = &[$($w),+];

            /// The value's word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => $w,)+
                }
            }

            /// The value a word names (exactly, case included).
            pub fn from_word(s: &str) -> Option<$ty> {
                match s {
                    $($w => Some($ty::$v),)+
                    _ => None,
                }
            }

            /// The value's position in [`Self::ALL`], for tallies kept per
            /// value.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl $crate::words::Words for $ty {
            const ALL: &'static [$ty] = &$ty::ALL;
            const WORDS: &'static [&'static str] = $ty::WORDS;
            fn as_word(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

pub(crate) use words;

#[cfg(test)]
mod tests {
    use super::Words;
    use crate::policy::{ClientFrom, Exists, HttpsAction};
    use crate::rule::{Access, Protocol};
    use crate::{Field, Step, Transport, Verdict};

    fn round_trip<T: Words + PartialEq + core::fmt::Debug>(index: impl Fn(T) -> usize) {
        assert_eq!(T::ALL.len(), T::WORDS.len());
        for (i, (&t, &w)) in T::ALL.iter().zip(T::WORDS).enumerate() {
            assert_eq!(t.as_word(), w);
            assert_eq!(index(t), i);
        }
    }

    #[test]
    fn every_enum_reads_back_its_words() {
        round_trip::<Access>(Access::index);
        round_trip::<Protocol>(Protocol::index);
        round_trip::<Transport>(Transport::index);
        round_trip::<Verdict>(Verdict::index);
        round_trip::<Step>(Step::index);
        round_trip::<ClientFrom>(ClientFrom::index);
        round_trip::<Exists>(Exists::index);
        round_trip::<HttpsAction>(HttpsAction::index);
        round_trip::<Field>(Field::index);
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_word(v.as_str()), Some(v));
        }
        for s in Step::ALL {
            assert_eq!(Step::from_word(s.as_str()), Some(s));
        }
        assert_eq!(Protocol::from_word("*"), Some(Protocol::Any));
        assert_eq!(Transport::from_word("TCP"), None, "from_word is exact");
        assert_eq!(Verdict::from_word("allow"), None);
    }
}
