//! `json` and `with` codecs, required and optional, with a user codec.

use redis_state::RedisHash;
use redis_state::codec::{Codec, FieldError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Shape {
    Circle { r: f64 },
    Square(f64),
}

/// A point stored as `x,y`.
struct Point {
    x: i32,
    y: i32,
}

struct CommaPoint;

impl Codec<Point> for CommaPoint {
    const EXPECTED: &'static str = "x,y";
    fn encode(value: &Point, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(format!("{},{}", value.x, value.y).as_bytes());
        Ok(())
    }
    fn decode(raw: &[u8]) -> Result<Point, FieldError> {
        let s = std::str::from_utf8(raw).map_err(FieldError::detail)?;
        let (x, y) = s.split_once(',').ok_or_else(FieldError::new)?;
        Ok(Point {
            x: x.parse().map_err(FieldError::detail)?,
            y: y.parse().map_err(FieldError::detail)?,
        })
    }
}

#[derive(RedisHash)]
struct Drawing {
    #[redis(id)]
    id: u64,
    #[redis(json)]
    shape: Shape,
    #[redis(json)]
    tags: Option<Vec<String>>,
    #[redis(with = CommaPoint)]
    origin: Point,
    #[redis(with = "CommaPoint")]
    anchor: Option<Point>,
}

fn main() {
    let _ = Drawing::update(&1u64)
        .set(Drawing::SHAPE, Shape::Circle { r: 1.0 })
        .set(Drawing::ANCHOR, Some(Point { x: 1, y: 2 }));
    let _ = Shape::Square(2.0);
}
