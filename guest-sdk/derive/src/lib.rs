//! `#[derive(Hyperparameters)]` for lightning-mcp models (re-exported by the guest SDK, whose
//! docs show it in use): each field's default and checks written once, beside the field.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Field, Fields, Path, Type, parse_macro_input};

/// Implements `Default` (each field's `#[hparam(default = ...)]`, else its type's default)
/// and `lightning_mcp_guest_sdk::check::Validate` (each field's `range = a..=b`, `max_len = n`
/// and `check = path` checks, in field order, every error naming the field) for a struct of
/// named fields. The expressions may use `self`'s other fields (`range = 1..=self.d_model`);
/// `check` names a `fn(&str, T) -> Result<()>` given the (`Copy`) value.
#[proc_macro_derive(Hyperparameters, attributes(hparam))]
pub fn derive_hyperparameters(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[hparam(...)]` says of one field.
#[derive(Default)]
struct FieldSpec {
    default: Option<Expr>,
    range: Option<Expr>,
    max_len: Option<Expr>,
    check: Option<Path>,
}

impl FieldSpec {
    /// The `#[hparam]` attributes of `field`.
    fn of(field: &Field) -> syn::Result<Self> {
        let mut spec = Self::default();
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("hparam")) {
            attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string);
                match key.as_deref() {
                    Some("default") => spec.default = Some(meta.value()?.parse()?),
                    Some("range") => spec.range = Some(meta.value()?.parse()?),
                    Some("max_len") => spec.max_len = Some(meta.value()?.parse()?),
                    Some("check") => spec.check = Some(meta.value()?.parse()?),
                    _ => {
                        return Err(meta.error(
                            "expected `default = ...`, `range = a..=b`, `max_len = n` or \
                             `check = path`",
                        ));
                    }
                }
                Ok(())
            })?;
        }
        Ok(spec)
    }
}

/// Both impls, or the error to show at the offending tokens.
fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(syn::Error::new(
                    input.span(),
                    "hyperparameters need named fields",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                input.span(),
                "hyperparameters are a struct",
            ));
        }
    };
    let mut defaults = Vec::new();
    let mut checks = Vec::new();
    for field in fields {
        let spec = FieldSpec::of(field)?;
        let ident = field
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new(field.span(), "a field without a name"))?;
        let value = spec.default.as_ref().map_or_else(
            || quote!(::core::default::Default::default()),
            |e| quote!(#e),
        );
        defaults.push(quote!(#ident: #value));
        checks.push(field_checks(field, ident, &spec));
    }
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::core::default::Default for #name #type_generics #where_clause {
            fn default() -> Self {
                Self { #(#defaults),* }
            }
        }

        impl #impl_generics ::lightning_mcp_guest_sdk::check::Validate
            for #name #type_generics #where_clause
        {
            fn validate(&self) -> ::lightning_mcp_guest_sdk::Result<()> {
                #(#checks)*
                ::core::result::Result::Ok(())
            }
        }
    })
}

/// The checks of one field: its length, then its range (each element's for a `Vec` or an
/// array, the value's when an `Option` holds one), then
/// the custom check.
fn field_checks(field: &Field, ident: &syn::Ident, spec: &FieldSpec) -> Tokens {
    let name = ident.to_string();
    let span = field.span();
    let sdk = quote!(::lightning_mcp_guest_sdk::check);
    let mut checks = Tokens::new();
    if let Some(max) = &spec.max_len {
        checks.extend(quote_spanned!(span=> #sdk::max_len(#name, self.#ident.len(), #max)?;));
    }
    if let Some(range) = &spec.range {
        checks.extend(match kind(&field.ty) {
            Kind::List => quote_spanned! {span=>
                for (index, value) in self.#ident.iter().enumerate() {
                    #sdk::within(&::std::format!("{}[{}]", #name, index), *value, #range)?;
                }
            },
            Kind::Optional => quote_spanned! {span=>
                if let ::core::option::Option::Some(value) = self.#ident {
                    #sdk::within(#name, value, #range)?;
                }
            },
            Kind::Single => quote_spanned!(span=> #sdk::within(#name, self.#ident, #range)?;),
        });
    }
    if let Some(check) = &spec.check {
        checks.extend(quote_spanned!(span=> #check(#name, self.#ident)?;));
    }
    checks
}

/// How a field's range applies.
enum Kind {
    /// To each element: a `Vec` or an array.
    List,
    /// To the value, when there is one: an `Option`.
    Optional,
    /// To the value.
    Single,
}

/// How a range applies to a field of type `ty`.
fn kind(ty: &Type) -> Kind {
    match ty {
        Type::Array(_) => Kind::List,
        Type::Path(path) => match path.path.segments.last() {
            Some(last) if last.ident == "Vec" => Kind::List,
            Some(last) if last.ident == "Option" => Kind::Optional,
            _ => Kind::Single,
        },
        _ => Kind::Single,
    }
}
