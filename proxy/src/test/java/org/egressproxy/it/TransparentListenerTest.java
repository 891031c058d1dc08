package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.net.Socket;
import java.nio.file.Path;
import java.util.List;
import javax.net.ssl.SSLSocket;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code transparent: true} in-process on loopback: the listening socket gets IP_TRANSPARENT
 * and each connection's local address is logged as {@code originalDst}. (Connections that TPROXY
 * really redirects are in {@code deploy.TransparentNetnsTest}.)
 */
class TransparentListenerTest {
  static Origins origins;
  static TestCerts certs;
  static Origins.Origin tlsOrigin;
  static Origins.Origin httpOrigin;

  @BeforeAll
  static void origins() throws Exception {
    origins = new Origins();
    certs = new TestCerts("allowed.test", "*.allowed.test");
    tlsOrigin = origins.tls(certs.serverContext("h2", "http/1.1"));
    httpOrigin = origins.http();
    DataPlaneTest.clientTls = certs.clientContext();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  static String transparentConfig(int tlsPort, int httpPort) {
    return DataPlaneTest.withPorts(DataPlaneTest.config(tlsPort, httpPort, ""), tlsPort, httpPort)
        .replace("mode: tls-sni,", "mode: tls-sni, transparent: true,")
        .replace("mode: http-host,", "mode: http-host, transparent: true,");
  }

  /** The transport {@code egress.transport=name} selects, skipping when it is not that one. */
  static Transport transport(String name) {
    String before = System.getProperty("egress.transport");
    System.setProperty("egress.transport", name);
    try {
      Transport t = Transport.select();
      assumeTrue(t.name().equals(name), () -> name + " is not available here ("
          + t.fallbackReason() + "): test skipped");
      return t;
    } finally {
      if (before == null) {
        System.clearProperty("egress.transport");
      } else {
        System.setProperty("egress.transport", before);
      }
    }
  }

  @Test
  void originalDestinationIsLoggedForTransparentListenersOnly(@TempDir Path dir)
      throws Exception {
    Transport chosen = transport("epoll");
    assertThat(chosen.transparentCapable()).isTrue();
    assumeTrue("root".equals(System.getProperty("user.name")),
        "IP_TRANSPARENT needs CAP_NET_ADMIN (run as root): test skipped");
    try (ProxyFixture p = new ProxyFixture(transparentConfig(tlsOrigin.port, httpOrigin.port),
        dir.resolve("decisions.jsonl"), chosen)) {
      try (Socket s = DataPlaneTest.socket(p.port("tls"))) {
        SSLSocket t = DataPlaneTest.tls(s, "www.allowed.test", "h2", "http/1.1");
        assertThat(t.getApplicationProtocol()).isEqualTo("h2");
      }
      try (Socket s = DataPlaneTest.socket(p.port("http"))) {
        for (int i = 0; i < 2; i++) { // the second request on a kept-alive connection too
          s.getOutputStream().write("GET /x HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n"
              .getBytes());
          assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|");
        }
      }
      try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + tlsOrigin.port))
            .contains("200");
      }
      int tls = p.port("tls");
      int http = p.port("http");
      List<String> log = p.closeAndReadLog();
      assertThat(log).filteredOn(l -> l.contains("\"listener\":\"tls\"")).isNotEmpty()
          .allSatisfy(l -> assertThat(l).contains("\"originalDst\":\"127.0.0.1:" + tls + "\""));
      assertThat(log).filteredOn(l -> l.contains("\"listener\":\"http\""))
          .filteredOn(l -> l.contains("\"event\":\"decision\"")).hasSize(2)
          .allSatisfy(l -> assertThat(l).contains("\"originalDst\":\"127.0.0.1:" + http + "\""));
      assertThat(log).filteredOn(l -> l.contains("\"listener\":\"explicit\"")).isNotEmpty()
          .noneSatisfy(l -> assertThat(l).contains("originalDst"));
    }
  }

  @Test
  void transparentOnNioIsRefusedWithTheListenersLine(@TempDir Path dir) {
    Throwable t = catchThrowable(() -> new ProxyFixture(
        transparentConfig(tlsOrigin.port, httpOrigin.port), null, Transport.nio("test")));
    assertThat(t).hasCauseInstanceOf(ProxyServer.BindException.class);
    assertThat(t.getCause().getMessage()).startsWith("test.yaml:3: listener 'tls': transparent:"
        + " true needs Netty's native epoll transport (IP_TRANSPARENT), but this process uses nio:"
        + " test");
  }
}
