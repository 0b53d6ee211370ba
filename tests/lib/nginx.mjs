// Debian's nginx (scripts/setup.sh installs it) as a site's real reverse proxy: a private
// instance on a free port with its configuration, logs and temp files in a temp directory,
// stopped when the test stops it or this process exits.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./stack.mjs";

const NGINX = "/usr/sbin/nginx";

/**
 * Starts nginx with `server` (the body of one `server {}` block) listening on 127.0.0.1:`port`
 * (0: a free one). Resolves with { port, stop }.
 */
export async function startNginx(server, port = 0) {
  const dir = mkdtempSync(join(tmpdir(), "pathlight-nginx-"));
  port ||= await freePort();
  const conf = `
daemon off;
# Workers as the test's own user (root in CI): the temp directories below are its own.
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    ${server}
  }
}`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  execFileSync(NGINX, ["-t", "-q", "-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  const child = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  process.on("exit", () => child.kill("SIGKILL"));
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGQUIT");
      await exited;
    },
  };
}
