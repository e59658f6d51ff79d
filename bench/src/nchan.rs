//! nginx + nchan, the first peer: the configuration generated per scenario (one worker, an
//! nchan publisher location and an EventSource subscriber location, every path under the
//! scenario's folder).

use std::net::SocketAddr;
use std::path::Path;

/// nginx + nchan: one worker, 20,000 connections, a publisher and an EventSource subscriber
/// location, every path under `dir`.
pub fn config(dir: &Path, addr: SocketAddr, module: &Path) -> String {
    let d = dir.display();
    format!(
        r#"load_module {module};
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process on;
error_log {d}/error.log warn;
pid {d}/nginx.pid;

events {{
    worker_connections 30000;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    nchan_shared_memory_size 256M;

    server {{
        listen {addr};

        location = /pub {{
            nchan_publisher;
            nchan_channel_id $arg_id;
            nchan_message_buffer_length 1000;
        }}

        location ~ /sub/(\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"#,
        module = module.display(),
    )
}
