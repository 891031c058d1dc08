package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.egressproxy.net.Transport;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * With {@code tunnel.splice}, bulk tunnel directions splice (epoll): a direction that has relayed 4 MiB goes on through a
 * pipe in the kernel. What must hold all the same: every byte arrives in order, a FIN arrives
 * after the last byte (also when the socket still held data as the FIN came), the close line
 * and the byte counter count exactly what went each way, a slow reader keeps the proxy's
 * buffers bounded, and a tunnel busy splicing is not idle. Splicing is seen from the outside as
 * the pipes the proxy opens (in this process: /proc/self/fd).
 */
class SpliceTest {
  static final int MIB = 1 << 20;

  @BeforeEach
  void epollOnly() {
    Assumptions.assumeTrue(io.netty.channel.epoll.Epoll.isAvailable(),
        "native epoll is not available here: splicing is epoll only, test skipped");
    Assumptions.assumeTrue(Files.isDirectory(Path.of("/proc/self/fd")),
        "no /proc/self/fd to see the proxy's pipes: test skipped");
  }

  /** With {@code tunnel.splice}; {@code timeouts}: more of {@code timeouts:}, after a comma. */
  static ProxyFixture proxy(Path dir, int originPort, String timeouts) {
    return proxy(dir, originPort, timeouts, true);
  }

  static ProxyFixture proxy(Path dir, int originPort, String timeouts, boolean splice) {
    return new ProxyFixture("""
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - allow: bulk.allowed.test
              ports: [%d]
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts:
            bulk.allowed.test: 127.0.0.1
          servers: ["127.0.0.1:9"]
        timeouts: {dns: 1s, connect: 2s%s}
        tunnel: {splice: %s}
        """.formatted(originPort, timeouts, splice), dir.resolve("decisions.jsonl"),
        Transport.select());
  }

  /** The byte at offset {@code i} of every stream in these tests. */
  static byte pattern(long i) {
    return (byte) ((i * 2654435761L) >>> 13 ^ i >>> 8);
  }

  /** Writes the stream's bytes from offset {@code from} up to {@code to}. */
  static void writePattern(OutputStream out, long from, long to) throws IOException {
    byte[] buf = new byte[64 * 1024];
    for (long off = from; off < to; ) {
      int len = (int) Math.min(buf.length, to - off);
      for (int k = 0; k < len; k++) {
        buf[k] = pattern(off + k);
      }
      out.write(buf, 0, len);
      off += len;
    }
  }

  /**
   * Reads to the end, checking the stream from offset {@code start}, pausing {@code pauseMs}
   * every {@code pauseEveryBytes} (0: never); returns the bytes read.
   */
  static long readPattern(InputStream in, long start, long pauseEveryBytes, long pauseMs)
      throws IOException, InterruptedException {
    byte[] buf = new byte[64 * 1024];
    long off = start;
    long nextPause = start + pauseEveryBytes;
    for (int r; (r = in.read(buf)) >= 0; ) {
      for (int k = 0; k < r; k++) {
        if (buf[k] != pattern(off + k)) {
          throw new AssertionError("byte " + (off + k) + " differs");
        }
      }
      off += r;
      if (pauseEveryBytes > 0 && off >= nextPause) {
        Thread.sleep(pauseMs);
        nextPause += pauseEveryBytes;
      }
    }
    return off - start;
  }

  /** The pipes this process holds open now (the proxy runs in it). */
  static long pipes() throws IOException {
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      return fds.filter(fd -> {
        try {
          return Files.readSymbolicLink(fd).toString().startsWith("pipe:");
        } catch (IOException e) {
          return false; // closed meanwhile
        }
      }).count();
    }
  }

  /** A one-connection origin on 127.0.0.1 running {@code serve} on its own thread. */
  static final class Origin implements AutoCloseable {
    interface Serve {
      String serve(Socket s) throws Exception;
    }

    final ServerSocket server;
    final CompletableFuture<String> result = new CompletableFuture<>();

    Origin(Serve serve) throws IOException {
      server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
      Thread t = new Thread(() -> {
        try (Socket s = server.accept()) {
          s.setSoTimeout(30_000);
          result.complete(serve.serve(s));
        } catch (Throwable e) {
          result.completeExceptionally(e);
        }
      }, "splice-test-origin");
      t.setDaemon(true);
      t.start();
    }

    int port() {
      return server.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      server.close();
    }
  }

  static Socket connect(ProxyFixture p, int originPort) throws IOException {
    Socket s = DataPlaneTest.socket(p.port("explicit"));
    s.setSoTimeout(30_000);
    assertThat(DataPlaneTest.connect(s, "bulk.allowed.test:" + originPort)).contains(" 200 ");
    return s;
  }

  static String closeLine(List<String> log) {
    return log.stream().filter(l -> l.contains("\"event\":\"close\"")).findFirst()
        .orElseThrow(() -> new AssertionError("no close line in " + log));
  }

  @ParameterizedTest(name = "tunnel.splice: {0}")
  @ValueSource(booleans = {true, false})
  void aDownloadSplicesAndEveryByteArrivesAndIsCounted(boolean splice, @TempDir Path dir)
      throws Exception {
    // 16 MiB read at once, then a rest the kernel buffers on the way hold (the origin can
    // finish and send its FIN while the client is not reading); not whole splices.
    long n = 16L * MIB + 3L * MIB + 12_345;
    long pipesBefore = pipes();
    try (Origin origin = new Origin(s -> {
          writePattern(s.getOutputStream(), 0, n);
          s.shutdownOutput(); // the FIN comes while the proxy still holds much of the stream
          return "sent";
        });
        ProxyFixture p = proxy(dir, origin.port(), "", splice)) {
      long[] pipesDuring = {0};
      long got;
      try (Socket s = connect(p, origin.port())) {
        // Slowly at first, so that the origin is done and its FIN is in while the proxy's
        // upstream socket still holds megabytes: those must still come, before the FIN.
        InputStream in = s.getInputStream();
        byte[] head = in.readNBytes(16 * MIB);
        for (int k = 0; k < head.length; k++) {
          if (head[k] != pattern(k)) {
            throw new AssertionError("byte " + k + " differs");
          }
        }
        pipesDuring[0] = pipes();
        assertThat(origin.result.get(20, TimeUnit.SECONDS)).isEqualTo("sent");
        Thread.sleep(200);
        got = head.length + readPattern(in, head.length, 0, 0);
      }
      assertThat(got).isEqualTo(n);
      if (splice) {
        assertThat(pipesDuring[0]).as("the download's pipe")
            .isGreaterThanOrEqualTo(pipesBefore + 2);
      } else {
        assertThat(pipesDuring[0]).as("no pipe: copied (the default)")
            .isLessThan(pipesBefore + 2);
      }
      String scrape = p.metrics.scrape();
      List<String> log = p.closeAndReadLog();
      assertThat(closeLine(log)).contains("\"bytesUp\":0,").contains("\"bytesDown\":" + n + ",");
      assertThat(scrape).contains(
          "egress_bytes_total{direction=\"down\",listener=\"explicit\",source=\"default\"} "
              + (double) n);
    }
    assertThat(pipes()).as("pipes closed with the tunnel").isLessThanOrEqualTo(pipesBefore);
  }

  @Test
  void anUploadSplicesAndItsHalfCloseStillGetsTheAnswer(@TempDir Path dir) throws Exception {
    long n = 40L * MIB + 777;
    try (Origin origin = new Origin(s -> {
          long got = readPattern(s.getInputStream(), 0, 8L * MIB, 100);
          s.getOutputStream().write(("got " + got + "\n").getBytes(StandardCharsets.US_ASCII));
          return "read " + got;
        });
        ProxyFixture p = proxy(dir, origin.port(), "")) {
      long pipesBefore = pipes();
      long[] pipesDuring = {0};
      String answer;
      try (Socket s = connect(p, origin.port())) {
        OutputStream out = s.getOutputStream();
        writePattern(out, 0, 16L * MIB);
        pipesDuring[0] = pipes();
        writePattern(out, 16L * MIB, n);
        s.shutdownOutput();
        answer = DataPlaneTest.line(s.getInputStream());
      }
      assertThat(origin.result.get(20, TimeUnit.SECONDS)).isEqualTo("read " + n);
      assertThat(answer).isEqualTo("got " + n);
      assertThat(pipesDuring[0]).as("the upload's pipe").isGreaterThanOrEqualTo(pipesBefore + 2);
      List<String> log = p.closeAndReadLog();
      assertThat(closeLine(log)).contains("\"bytesUp\":" + n + ",")
          .contains("\"bytesDown\":" + ("got " + n + "\n").length() + ",");
    }
  }

  @Test
  void aReaderThatStopsWhileSplicingKeepsTheProxysBuffersBounded(@TempDir Path dir)
      throws Exception {
    AtomicLong sent = new AtomicLong();
    long limit = 1L << 30;
    try (Origin origin = new Origin(s -> {
          byte[] zeros = new byte[64 * 1024];
          OutputStream out = s.getOutputStream();
          try {
            while (sent.get() < limit) {
              out.write(zeros);
              sent.addAndGet(zeros.length);
            }
          } catch (IOException e) {
            return "cut at " + sent.get(); // the tunnel closed under a blocked write
          }
          return "all sent";
        });
        ProxyFixture p = proxy(dir, origin.port(), "")) {
      long pipesBefore = pipes();
      try (Socket s = connect(p, origin.port())) {
        s.getInputStream().readNBytes(12 * MIB); // well past the switch to splicing
        long pipesSplicing = pipes();
        // Now the client reads nothing more; the origin writes until TCP pushes back.
        long last = -1;
        for (int i = 0; i < 100; i++) {
          Thread.sleep(100);
          long now = sent.get();
          if (now == last) {
            break;
          }
          last = now;
        }
        assertThat(sent.get()).as("the origin stopped by backpressure").isEqualTo(last)
            .isLessThan(limit);
        assertThat(pipesSplicing).isGreaterThanOrEqualTo(pipesBefore + 2);
        long pending = p.maxPendingToAClient();
        // What the proxy holds in user space for the client: at most what it held when the
        // splicing began (the water mark and one read); the spliced bytes wait in the kernel
        // (socket buffers and one 64 KiB pipe), not in the proxy.
        long bound = org.egressproxy.net.ProxyServer.WATER_MARK.high()
            + org.egressproxy.net.ProxyServer.MAX_READ + 4096;
        assertThat(pending).isLessThanOrEqualTo(bound);
        // And the kernel's share is bounded too: what the origin got rid of beyond what the
        // client read is socket buffers and the pipe, not a growing heap.
        assertThat(sent.get() - 12L * MIB).isLessThan(64L * MIB);
        // Stalled with a full pipe, the event loops wait; they do not spin on a readable
        // upstream they cannot splice from (spinning takes the whole second).
        assertThat(DataPlaneTest.eventLoopCpuNanos(1000))
            .isLessThan(TimeUnit.MILLISECONDS.toNanos(200));
      }
    }
  }

  @Test
  void aTunnelBusySplicingIsNotIdleAndAQuietOneStillCloses(@TempDir Path dir) throws Exception {
    // More than the socket buffers between the proxy and the client hold (a tunnel closed
    // early would still deliver those): most of the paced part is still to be spliced.
    long n = 14L * MIB;
    try (Origin origin = new Origin(s -> {
          writePattern(s.getOutputStream(), 0, n);
          // then quiet, no FIN: the proxy's idle timeout is what ends the tunnel
          try {
            return s.getInputStream().read() < 0 ? "closed by the proxy" : "data?";
          } catch (SocketTimeoutException e) {
            return "still open";
          } catch (IOException e) {
            return "closed by the proxy";
          }
        });
        ProxyFixture p = proxy(dir, origin.port(), ", idle: 500ms")) {
      try (Socket s = connect(p, origin.port())) {
        InputStream in = s.getInputStream();
        byte[] head = in.readNBytes(5 * MIB);
        assertThat(head[head.length - 1]).isEqualTo(pattern(head.length - 1));
        // 512 KiB every 100 ms: a 4 MiB splice takes longer than the idle time, and nothing of
        // it passes a handler of the client's. The pauses are well under the idle time, also
        // as the proxy sees them (TCP reports a full socket writable again only once a third
        // of its buffer is free).
        long off = head.length;
        while (off < n) {
          byte[] part = in.readNBytes(MIB / 2);
          assertThat(part).hasSize(MIB / 2);
          assertThat(part[0]).isEqualTo(pattern(off));
          off += part.length;
          Thread.sleep(100);
        }
        assertThat(off).isEqualTo(n);
        // Quiet now: closed within two idle times (and slack for a loaded machine), by the proxy.
        long start = System.nanoTime();
        s.setSoTimeout(6_000);
        assertThat(in.read()).isEqualTo(-1);
        assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start))
            .isLessThan(3_000);
      }
      assertThat(origin.result.get(10, TimeUnit.SECONDS)).isEqualTo("closed by the proxy");
      List<String> log = p.closeAndReadLog();
      assertThat(closeLine(log)).contains("\"bytesDown\":" + n + ",");
    }
  }
}
