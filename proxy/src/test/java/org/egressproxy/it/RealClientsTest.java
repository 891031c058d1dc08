package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * curl and openssl s_client through the proxy, as operators and nodes use it. Skipped, with a
 * message saying what to install, where the tool is missing (.ci/run installs both).
 */
public class RealClientsTest {
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;

  @BeforeAll
  static void start() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("konnectivity", "h2", "http/1.1"));
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  public record Run(int status, String output) {}

  public static boolean installed(String tool) {
    try {
      Process p = new ProcessBuilder("sh", "-c", "command -v " + tool).start();
      return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (Exception e) {
      return false;
    }
  }

  public static Run run(String stdin, String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    if (!p.waitFor(30, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("timed out: " + String.join(" ", cmd));
    }
    return new Run(p.exitValue(), new String(p.getInputStream().readAllBytes(),
        StandardCharsets.UTF_8));
  }

  ProxyFixture proxy(Path dir) {
    return new ProxyFixture(DataPlaneTest.withPorts(
        DataPlaneTest.config(tlsOrigin.port, tlsOrigin.port, ""), tlsOrigin.port), null);
  }

  @Test
  void curlThroughConnect(@TempDir Path dir) throws Exception {
    assumeTrue(installed("curl"), "curl is not installed (apt-get install curl): test skipped");
    Path ca = Files.writeString(dir.resolve("ca.pem"), certs.caPem());
    try (ProxyFixture p = proxy(dir)) {
      String proxy = "http://127.0.0.1:" + p.port("explicit");
      Run ok = run("", "curl", "-sS", "--http1.1", "--cacert", ca.toString(), "-x", proxy,
          "https://www.allowed.test:" + tlsOrigin.port + "/hello");
      assertThat(ok.status()).as(ok.output()).isZero();
      assertThat(ok.output()).contains("alpn=http/1.1").contains("path=/hello");
      Run denied = run("", "curl", "-sS", "--cacert", ca.toString(), "-x", proxy,
          "https://evil.example:" + tlsOrigin.port + "/");
      assertThat(denied.status()).isEqualTo(56);
      assertThat(denied.output()).contains("403");
    }
  }

  @Test
  void opensslThroughConnectAndTransparentKeepsKonnectivity(@TempDir Path dir) throws Exception {
    assumeTrue(installed("openssl"),
        "openssl is not installed (apt-get install openssl): test skipped");
    Path ca = Files.writeString(dir.resolve("ca.pem"), certs.caPem());
    try (ProxyFixture p = proxy(dir)) {
      List<List<String>> commands = new ArrayList<>();
      commands.add(List.of("openssl", "s_client", "-proxy", "127.0.0.1:" + p.port("explicit"),
          "-connect", "www.allowed.test:" + tlsOrigin.port, "-servername", "www.allowed.test",
          "-alpn", "konnectivity", "-CAfile", ca.toString(), "-verify_return_error"));
      commands.add(List.of("openssl", "s_client", "-connect", "127.0.0.1:" + p.port("tls"),
          "-servername", "www.allowed.test", "-alpn", "konnectivity", "-CAfile", ca.toString(),
          "-verify_return_error"));
      for (List<String> cmd : commands) {
        Run r = run("", cmd.toArray(new String[0]));
        assertThat(r.output()).as(String.join(" ", cmd))
            .contains("ALPN protocol: konnectivity").contains("Verify return code: 0 (ok)");
      }
      Run denied = run("", "openssl", "s_client", "-connect", "127.0.0.1:" + p.port("tls"),
          "-servername", "evil.example");
      assertThat(denied.output()).contains("alert access denied");
    }
  }
}
