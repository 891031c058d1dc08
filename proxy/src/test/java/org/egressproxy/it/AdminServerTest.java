package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The admin listener against clients that misbehave: it answers what it can, refuses what did
 * not parse, and a client that sends and never reads cannot make it buffer without bound or
 * stop answering others.
 */
class AdminServerTest {
  static ProxyFixture proxy(Path dir) {
    return new ProxyFixture(DataPlaneTest.withPorts(DataPlaneTest.config(443, 80, ""), 443),
        dir.resolve("d.jsonl"));
  }

  static String request(int port, String raw) throws Exception {
    try (Socket s = DataPlaneTest.socket(port)) {
      s.getOutputStream().write(raw.getBytes(StandardCharsets.ISO_8859_1));
      String head = DataPlaneTest.readHead(s.getInputStream());
      return head.split("\r\n")[0];
    }
  }

  @Test
  void whatDidNotParseIsRefusedNotServed(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir)) {
      int port = p.adminPort();
      assertThat(request(port, "GET /check?host=%zz HTTP/1.1\r\nHost: a\r\n\r\n"))
          .as("a stray %").isEqualTo("HTTP/1.1 400 Bad Request");
      assertThat(request(port, "GET /readyz HTTP/1.1\r\nHost: a\r\nX-Big: "
          + "v".repeat(9000) + "\r\n\r\n")).as("a head over 8 KiB").startsWith("HTTP/1.1 431");
      assertThat(request(port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"))
          .isEqualTo("HTTP/1.1 200 OK");
      try (Socket s = DataPlaneTest.socket(port)) { // two requests, both answered, in order
        s.getOutputStream().write(("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
            + "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("200|ok");
        assertThat(DataPlaneTest.readResponse(s.getInputStream())).startsWith("404|");
      }
    }
  }

  /**
   * 4,000 pipelined GET /metrics that the client never reads (some 50 MB of answers): the
   * connection is closed, not answered into memory, and /healthz answers meanwhile.
   */
  @Test
  void aClientThatSendsAndNeverReadsIsClosed(@TempDir Path dir) throws Exception {
    try (ProxyFixture p = proxy(dir)) {
      int port = p.adminPort();
      try (Socket flood = new Socket()) {
        flood.setReceiveBufferSize(4096);
        flood.connect(new java.net.InetSocketAddress("127.0.0.1", port), 5000);
        flood.setSoTimeout(10_000);
        byte[] one = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(
            StandardCharsets.US_ASCII);
        boolean closed = false;
        try {
          for (int i = 0; i < 4000; i++) {
            flood.getOutputStream().write(one);
          }
        } catch (java.net.SocketException e) {
          closed = true; // the admin listener closed it under the writes
        }
        assertThat(request(port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"))
            .as("another client meanwhile").isEqualTo("HTTP/1.1 200 OK");
        if (!closed) {
          // what it holds is a few answers; then the end of the connection
          InputStream in = flood.getInputStream();
          long read = 0;
          byte[] buf = new byte[65536];
          try {
            for (int n; (n = in.read(buf)) >= 0 && read < (256L << 20); ) {
              read += n;
            }
          } catch (java.net.SocketException e) {
            // reset: closed with the requests it did not read
          }
          assertThat(read).as("bytes of answers before the close")
              .isLessThan(ANSWERS_BOUND);
        }
      }
    }
  }

  /** What the admin listener may hand a client that pipelined too much before closing it. */
  static final long ANSWERS_BOUND = 20L << 20;
}
