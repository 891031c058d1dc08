package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Draining (SIGTERM): idle HTTP keep-alive connections close at once - they would otherwise hold
 * the drain to its end - while a tunnel goes on working until it ends.
 */
class DrainTest {
  static Origins origins;
  static Origins.Origin httpOrigin;
  static Origins.Origin echo;

  @BeforeAll
  static void start() {
    origins = new Origins();
    httpOrigin = origins.http();
    echo = origins.echo();
  }

  @AfterAll
  static void stop() {
    origins.close();
  }

  /**
   * A request in flight when the drain starts still gets its answer, marked
   * {@code Connection: close} so the client does not send the next request on a connection
   * that is about to close; then the connection closes.
   */
  @Test
  void anAnswerInFlightWhenTheDrainStartsSaysConnectionClose(@TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(
            httpOrigin.port, httpOrigin.port, ""), httpOrigin.port, echo.port),
            dir.resolve("decisions.jsonl"));
        Socket busy = DataPlaneTest.socket(p.port("explicit"))) {
      var out = busy.getOutputStream();
      out.write(("POST http://www.allowed.test:" + httpOrigin.port + "/x HTTP/1.1\r\nHost:"
          + " www.allowed.test:" + httpOrigin.port + "\r\nContent-Length: 10\r\n\r\n12345")
          .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      // the request is being forwarded (its upstream connection is in use) when the drain starts
      DataPlaneTest.await("the upstream connection of the exchange",
          () -> p.metrics.upstreamConnect().count() > 0);
      p.server.stopAccepting();
      Thread.sleep(100); // the drain reaches the connection's loop
      out.write("67890".getBytes(StandardCharsets.US_ASCII));
      out.flush();
      String head = DataPlaneTest.readHead(busy.getInputStream());
      assertThat(head).startsWith("HTTP/1.1 200").containsIgnoringCase("connection: close");
      int length = Integer.parseInt(head.replaceAll("(?is).*content-length: *(\\d+).*", "$1"));
      assertThat(new String(busy.getInputStream().readNBytes(length), StandardCharsets.UTF_8))
          .contains("bytes=10");
      assertThat(busy.getInputStream().read()).as("closed after the answer").isEqualTo(-1);
    }
  }

  /**
   * Requests pipelined behind the answer in flight when the drain starts are not forwarded: the
   * answer says {@code Connection: close}, so the client will send them again elsewhere (they
   * were forwarded before: a POST would have run twice).
   */
  @Test
  void requestsPipelinedBehindTheAnswerInFlightAreNotForwardedOnceDraining(@TempDir Path dir)
      throws Exception {
    try (java.net.ServerSocket origin = FaultTest.origin()) {
      int port = origin.getLocalPort();
      origin.setSoTimeout(10_000);
      try (ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(
              port, port, ""), port), dir.resolve("decisions.jsonl"));
          Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        String get = "GET http://www.allowed.test:" + port + "/%s HTTP/1.1\r\nHost:"
            + " www.allowed.test:" + port + "\r\n\r\n";
        s.getOutputStream().write((get.formatted("one") + get.formatted("two"))
            .getBytes(StandardCharsets.US_ASCII));
        try (Socket up = origin.accept()) {
          up.setSoTimeout(10_000);
          assertThat(DataPlaneTest.readHead(up.getInputStream())).startsWith("GET /one ");
          p.server.stopAccepting();
          Thread.sleep(100); // the drain reaches the connection's loop
          up.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
              .getBytes(StandardCharsets.US_ASCII));
          String head = DataPlaneTest.readHead(s.getInputStream());
          assertThat(head).startsWith("HTTP/1.1 200").containsIgnoringCase("connection: close");
          assertThat(s.getInputStream().readNBytes(3)).isEqualTo("one".getBytes());
          assertThat(s.getInputStream().read()).as("closed after the answer").isEqualTo(-1);
          assertThat(up.getInputStream().read()).as("the second request never sent upstream")
              .isEqualTo(-1);
        }
        origin.setSoTimeout(300);
        org.assertj.core.api.Assertions.assertThatThrownBy(origin::accept)
            .as("nor on a new connection").isInstanceOf(java.net.SocketTimeoutException.class);
      }
    }
  }

  @Test
  void idleKeepAliveConnectionsCloseAndTunnelsGoOn(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(
            httpOrigin.port, httpOrigin.port, ""), httpOrigin.port, echo.port),
            dir.resolve("decisions.jsonl"));
        Socket idleProxy = DataPlaneTest.socket(p.port("explicit"));
        Socket idleHost = DataPlaneTest.socket(p.port("http"));
        Socket tunnel = DataPlaneTest.socket(p.port("explicit"))) {
      idleProxy.getOutputStream().write(("GET http://www.allowed.test:" + httpOrigin.port
          + "/x HTTP/1.1\r\nHost: www.allowed.test:" + httpOrigin.port + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII));
      assertThat(DataPlaneTest.readResponse(idleProxy.getInputStream())).startsWith("200|");
      idleHost.getOutputStream().write("GET /y HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n"
          .getBytes(StandardCharsets.US_ASCII));
      assertThat(DataPlaneTest.readResponse(idleHost.getInputStream())).startsWith("200|");
      assertThat(DataPlaneTest.connect(tunnel, "www.allowed.test:" + echo.port))
          .contains(" 200 ");

      p.server.stopAccepting();

      assertThat(idleProxy.getInputStream().read()).as("idle http-proxy connection closed")
          .isEqualTo(-1);
      assertThat(idleHost.getInputStream().read()).as("idle http-host connection closed")
          .isEqualTo(-1);
      // the tunnel is still there and still carries bytes; it alone holds the drain
      tunnel.getOutputStream().write("ping\n".getBytes(StandardCharsets.US_ASCII));
      assertThat(DataPlaneTest.line(tunnel.getInputStream())).isEqualTo("ping");
      assertThat(p.server.awaitDrained(Duration.ofMillis(300), () -> false)).isEqualTo(1);
      tunnel.close();
      assertThat(p.server.awaitDrained(Duration.ofSeconds(5), () -> false)).isZero();
    }
  }
}
