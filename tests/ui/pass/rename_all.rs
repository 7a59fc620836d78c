//! Every `rename_all` rule, and `rename` winning over it.

use redis_state::RedisHash;

macro_rules! model {
    ($name:ident, $rule:literal, $expected:literal) => {
        #[derive(RedisHash)]
        #[redis(rename_all = $rule)]
        struct $name {
            #[redis(id)]
            id: u64,
            created_at: u64,
            #[redis(rename = "kept_as_is")]
            renamed_field: u64,
        }

        assert_eq!($name::SCHEMA.fields[1].name, $expected);
        assert_eq!($name::SCHEMA.fields[2].name, "kept_as_is");
    };
}

fn main() {
    model!(A, "snake_case", "created_at");
    model!(B, "camelCase", "createdAt");
    model!(C, "PascalCase", "CreatedAt");
    model!(D, "kebab-case", "created-at");
    model!(E, "SCREAMING_SNAKE_CASE", "CREATED_AT");
    model!(F, "lowercase", "createdat");
    model!(G, "UPPERCASE", "CREATEDAT");
}
