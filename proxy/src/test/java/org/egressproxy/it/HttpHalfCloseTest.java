package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A client's FIN on the HTTP listeners: the proxy closes its side too - at once when nothing is
 * in flight, after the answer when a request is - rather than holding a half-closed socket (and
 * a place under the connection limits) until the idle timeout. A FIN that arrives while a
 * CONNECT tunnel is being set up reaches the upstream after the bytes sent before it. On
 * {@code tls-sni}, a FIN before a whole ClientHello closes at once, not at the ClientHello
 * timeout.
 */
class HttpHalfCloseTest {
  static Origins origins;
  static Origins.Origin httpOrigin;
  static Origins.Origin recorder;

  @BeforeAll
  static void start() {
    origins = new Origins();
    httpOrigin = origins.http();
    recorder = origins.recorder();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  ProxyFixture proxy(Path dir) {
    // a ClientHello timeout longer than the sockets' read timeout: closing at it would fail
    return new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(httpOrigin.port,
        httpOrigin.port, "").replace("clientHello: 2s", "clientHello: 60s"),
        httpOrigin.port, recorder.port), dir.resolve("decisions.jsonl"));
  }

  static String get(String listener, String host) {
    String target = listener.equals("explicit")
        ? "http://" + host + ":" + httpOrigin.port + "/x" : "/x";
    String hostHeader = listener.equals("explicit") ? host + ":" + httpOrigin.port : host;
    return "GET " + target + " HTTP/1.1\r\nHost: " + hostHeader + "\r\n\r\n";
  }

  static void write(Socket s, String text) throws IOException {
    s.getOutputStream().write(text.getBytes(StandardCharsets.US_ASCII));
    s.getOutputStream().flush();
  }

  /** The proxy closed its side: end of stream, and the listener counts no open connection. */
  static void assertClosedByTheProxy(ProxyFixture p, Socket s, String listener)
      throws Exception {
    InputStream in = s.getInputStream();
    assertThat(in.read()).as("end of stream from the proxy").isEqualTo(-1);
    DataPlaneTest.await("the listener's open connections back to 0",
        () -> p.metrics.activeByListener().getOrDefault(listener, 0) == 0);
  }

  /** After an answer, forwarded or a refusal. */
  @ParameterizedTest
  @CsvSource({"explicit, www.allowed.test, 200", "http, www.allowed.test, 200",
      "explicit, evil.example, 403", "http, evil.example, 403"})
  void aFinAfterAnAnswerClosesTheConnection(String listener, String host, String status,
      @TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir); Socket s = DataPlaneTest.socket(p.port(listener))) {
      write(s, get(listener, host));
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith(status + "|");
      s.shutdownOutput();
      assertClosedByTheProxy(p, s, listener);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"explicit", "http"})
  void aFinRightAfterTheRequestStillGetsTheWholeAnswer(String listener, @TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = proxy(dir); Socket s = DataPlaneTest.socket(p.port(listener))) {
      write(s, get(listener, "www.allowed.test"));
      s.shutdownOutput();
      assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|")
          .contains("path=/x");
      assertClosedByTheProxy(p, s, listener);
    }
  }

  /** The FIN comes while the name is still being resolved (a silent name server). */
  @ParameterizedTest
  @ValueSource(strings = {"explicit", "http"})
  void aFinBehindARequestWhoseUpstreamFailsClosesAfterTheRefusal(String listener,
      @TempDir Path dir) throws Exception {
    try (TestDns silent = new TestDns(java.util.Map.of(), true)) {
      ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(
          httpOrigin.port, httpOrigin.port, "").replace("servers: [\"127.0.0.1:9\"]",
          "servers: [\"" + silent.address() + "\"]"), httpOrigin.port),
          dir.resolve("decisions.jsonl"));
      try (p; Socket s = DataPlaneTest.socket(p.port(listener))) {
        write(s, get(listener, "unresolved.allowed.test"));
        s.shutdownOutput(); // while the lookup waits for timeouts.dns
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("504|");
        assertClosedByTheProxy(p, s, listener);
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"explicit", "http"})
  void aFinBeforeAnyRequestClosesTheConnection(String listener, @TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = proxy(dir); Socket s = DataPlaneTest.socket(p.port(listener))) {
      DataPlaneTest.await("the connection counted",
          () -> p.metrics.activeByListener().getOrDefault(listener, 0) == 1);
      s.shutdownOutput();
      assertClosedByTheProxy(p, s, listener);
    }
  }

  @Test
  void aTlsSniClientThatClosesBeforeItsClientHelloIsDoneIsClosedAtOnce(@TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = proxy(dir)) {
      try (Socket probe = DataPlaneTest.socket(p.port("tls"))) {
        probe.shutdownOutput(); // a TCP health probe: connect, close
        assertClosedByTheProxy(p, probe, "tls");
      }
      try (Socket partial = DataPlaneTest.socket(p.port("tls"))) {
        byte[] hello = ClientHellos.records(ClientHellos.handshake("www.allowed.test",
            java.util.List.of("h2"), 0, false), 1);
        partial.getOutputStream().write(hello, 0, hello.length / 2);
        partial.shutdownOutput();
        assertClosedByTheProxy(p, partial, "tls");
      }
      java.util.List<String> log = p.closeAndReadLog();
      assertThat(log).singleElement().asString().contains("\"listener\":\"tls\"")
          .contains("\"decision\":\"deny\"").contains("\"reason\":\"bad-request\"");
    }
  }

  @Test
  void aTlsSniFinRightBehindTheClientHelloFollowsItToTheUpstream(@TempDir Path dir)
      throws Exception {
    ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(
        recorder.port, httpOrigin.port, ""), recorder.port), dir.resolve("decisions.jsonl"));
    try (p; Socket s = DataPlaneTest.socket(p.port("tls"))) {
      byte[] hello = ClientHellos.records(ClientHellos.handshake("www.allowed.test",
          java.util.List.of("h2"), 0, false), 1);
      s.getOutputStream().write(hello);
      s.shutdownOutput(); // at once: the FIN comes with the ClientHello
      assertThat(DataPlaneTest.line(s.getInputStream())).isEqualTo("got " + hello.length);
      assertClosedByTheProxy(p, s, "tls");
    }
    assertThat(p.closeAndReadLog()).filteredOn(l -> l.contains("\"event\":\"decision\""))
        .singleElement().asString().contains("\"decision\":\"allow\"")
        .contains("\"upstream\":\"127.0.0.1:" + recorder.port + "\"");
  }

  @Test
  void aFinDuringTunnelSetUpReachesTheUpstreamAfterTheEarlyBytes(@TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = proxy(dir); Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      String authority = "www.allowed.test:" + recorder.port;
      // CONNECT, 11 bytes for the tunnel and the FIN, all before the 200
      write(s, "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\nhello there");
      s.shutdownOutput();
      InputStream in = s.getInputStream();
      assertThat(DataPlaneTest.readHead(in)).startsWith("HTTP/1.1 200");
      assertThat(DataPlaneTest.line(in)).isEqualTo("got 11");
      assertClosedByTheProxy(p, s, "explicit");
    }
  }
}
