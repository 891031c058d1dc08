package org.egressproxy.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The admin status page in a real browser: headless Chromium (Debian's chromium package) renders
 * it and the page shows a destination after it was denied. Skipped, with a message, where
 * Chromium is not installed (.ci/run installs it when it can).
 */
class StatusPageBrowserTest {
  static String chromium() {
    for (String c : List.of("/usr/bin/chromium", "/usr/bin/chromium-browser")) {
      if (Files.isExecutable(Path.of(c))) {
        return c;
      }
    }
    return null;
  }

  @Test
  void chromiumRendersTheStatusPageWithTheDeniedDestination(@TempDir Path dir) throws Exception {
    String browser = chromium();
    assumeTrue(browser != null,
        "Chromium is not installed (apt-get install chromium): status page browser test skipped");
    int admin = CliProcessTest.freePort();
    int proxy = CliProcessTest.freePort();
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "listeners:\n  - {name: explicit, mode: http-proxy, bind: "
        + "\"127.0.0.1:" + proxy + "\"}\nadmin: {bind: \"127.0.0.1:" + admin + "\"}\n"
        + "policy:\n  rules:\n    - allow: a.test\n");
    Process p = CliProcessTest.java(dir, "run", "--config", config.toString()).start();
    try {
      var out = CliProcessTest.lines(p);
      CliProcessTest.await(out, "ready.");
      try (java.net.Socket s = new java.net.Socket("127.0.0.1", proxy)) {
        s.getOutputStream().write("CONNECT needed-by-cluster.example:443 HTTP/1.1\r\n\r\n"
            .getBytes(StandardCharsets.US_ASCII));
        s.getInputStream().readAllBytes();
      }
      Process b = new ProcessBuilder(browser, "--headless", "--no-sandbox", "--disable-gpu",
          "--disable-background-networking", "--disable-component-update", "--no-first-run",
          "--disable-sync", "--user-data-dir=" + dir.resolve("chromium"), "--dump-dom",
          "http://127.0.0.1:" + admin + "/").redirectError(ProcessBuilder.Redirect.DISCARD)
          .start();
      String dom = new String(b.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(b.waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(dom).contains("<h1>egress-proxy</h1>").contains("Most denied destinations")
          .contains("needed-by-cluster.example:443");
      CliProcessTest.signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
    } finally {
      p.destroyForcibly();
    }
  }
}
