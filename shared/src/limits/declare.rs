//! The macro that turns the one limits table into the `Limits` struct, its
//! groups, the `SCHEMA` of leaves and the accessors that tie them together.
//!
//! Keeping struct and metadata in one declaration is what makes "add a field"
//! a one-line change that cannot leave the schema, the docs or the JSON behind.

/// Declares the nested `Limits` struct and its `SCHEMA` from one table.
///
/// Each leaf names its label, description, unit, range (`(min, max)` or `none`),
/// whether it is read-only, and its default: `fixed(value)` or
/// `probe("formula", |p| expr)` computed from the hardware [`Probe`](super::Probe).
macro_rules! declare_limits {
    (
        $(
            $(#[doc = $gdoc:literal])*
            $group:ident: $Group:ident {
                $(
                    $field:ident {
                        label: $label:literal,
                        desc: $desc:literal,
                        unit: $unit:ident,
                        range: $range:tt,
                        read_only: $ro:literal,
                        default: $rule:ident ( $($rule_args:tt)* ) $(,)?
                    }
                ),* $(,)?
            }
        )*
    ) => {
        /// Every limit of fazt, nested by group (SPEC §3).
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct Limits {
            $( $(#[doc = $gdoc])* pub $group: $Group, )*
        }

        $(
            $(#[doc = $gdoc])*
            #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
            pub struct $Group {
                $( #[doc = $desc] pub $field: u64, )*
            }
        )*

        /// Every leaf of [`Limits`], in declaration order.
        pub static SCHEMA: &[Leaf] = &[
            $( $(
                Leaf {
                    group: stringify!($group),
                    field: stringify!($field),
                    label: $label,
                    desc: $desc,
                    unit: Unit::$unit,
                    range: limit_range!($range),
                    read_only: $ro,
                    default: limit_default!($rule($($rule_args)*)),
                },
            )* )*
        ];

        impl Limits {
            /// All zeros; only a starting point for filling from `SCHEMA`.
            fn zeroed() -> Limits {
                Limits { $( $group: $Group { $( $field: 0, )* }, )* }
            }

            /// Mutable references to every leaf, in `SCHEMA` order.
            fn leaves_mut(&mut self) -> Vec<&mut u64> {
                vec![ $( $( &mut self.$group.$field, )* )* ]
            }

            /// Every leaf's value, in `SCHEMA` order.
            pub fn values(&self) -> Vec<u64> {
                vec![ $( $( self.$group.$field, )* )* ]
            }
        }
    };
}

macro_rules! limit_range {
    (none) => {
        None
    };
    (($min:expr, $max:expr)) => {
        Some(Range {
            min: $min,
            max: $max,
        })
    };
}

macro_rules! limit_default {
    (fixed($value:expr)) => {
        DefaultRule::Fixed($value)
    };
    (probe($formula:literal, |$p:ident| $body:expr)) => {
        DefaultRule::Probe {
            formula: $formula,
            compute: {
                fn compute($p: &Probe) -> u64 {
                    $body
                }
                compute
            },
        }
    };
}

pub(crate) use {declare_limits, limit_default, limit_range};
