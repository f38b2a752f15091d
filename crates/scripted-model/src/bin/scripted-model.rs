//! TEST SUPPORT: runs the scripted model server. `scripted-model [ADDR]` (default 127.0.0.1:0);
//! prints `listening on http://ADDR` once bound.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    mosaic_scripted_model::serve(listener, mosaic_scripted_model::Shared::default()).await
}
