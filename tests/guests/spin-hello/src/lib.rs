//! A Spin app (spin-sdk 7): routes answered with the SDK's own response
//! conversions — text, JSON, a status with a body, a response built by hand.

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Json, Request, StatusCode};
use spin_sdk::http_service;

#[derive(Serialize)]
struct Greeting {
    greeting: &'static str,
    path: String,
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/" => "Hello from Spin!".into_response(),
        "/json" => Json(Greeting {
            greeting: "hello",
            path,
        })
        .into_response(),
        "/created" => (StatusCode::CREATED, String::from("created")).into_response(),
        "/teapot" => spin_sdk::http::Response::builder()
            .status(StatusCode::IM_A_TEAPOT)
            .header("x-spin", "yes")
            .body(String::from("short and stout"))
            .into_response(),
        _ => (StatusCode::NOT_FOUND, String::from("not found")).into_response(),
    }
}
