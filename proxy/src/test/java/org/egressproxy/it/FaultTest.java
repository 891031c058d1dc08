package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.egressproxy.NettyLeakCheck;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Faults around the proxy, on real sockets: an upstream that resets mid-stream, one that accepts
 * and never reads, a name server that never answers, and a decision log on a full or read-only
 * filesystem. After each: the proxy serves the next client, Netty reports no leaked buffer, and
 * {@code /healthz} answers 200.
 */
class FaultTest {
  static TestDns silentDns;

  @BeforeAll
  static void dns() {
    silentDns = new TestDns(Map.of(), true);
  }

  @AfterAll
  static void stop() {
    silentDns.close();
  }

  static String yaml(int port, String extra) {
    return """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:0"}
        policy:
          rules:
            - {allow: "*.allowed.test", ports: [%1$d, 443]}
          allowDestinationCidrs: [127.0.0.1/32]
        resolver:
          hosts: {www.allowed.test: 127.0.0.1}
          servers: ["%2$s"]
        timeouts: {dns: 1s, connect: 2s}
        %3$s
        """.formatted(port, silentDns.address(), extra);
  }

  /** The proxy still serves, nothing leaked, /healthz is 200. */
  static void stillHealthy(ProxyFixture p, String after) throws Exception {
    DataPlaneTest.await("every client connection of '" + after + "' closed",
        () -> p.server.runtime().limits().open() == 0);
    try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
      assertThat(DataPlaneTest.connect(s, "evil.example:443")).contains(" 403 ");
    }
    assertThat(p.admin("/healthz")).isEqualTo("200 ok\n");
    NettyLeakCheck.assertNoLeaks(after);
  }

  static ServerSocket origin() throws IOException {
    return new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
  }

  static Thread daemon(String name, Runnable r) {
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    t.start();
    return t;
  }

  @Test
  void anUpstreamThatResetsMidStream(@TempDir Path dir) throws Exception {
    try (ServerSocket origin = origin()) {
      daemon("resetting-origin", () -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().readNBytes(5);
          s.getOutputStream().write(new byte[256 * 1024]);
          s.setSoLinger(true, 0); // close with a RST, mid-stream
        } catch (IOException e) {
          // the test fails on the client side
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""),
          dir.resolve("decisions.jsonl"))) {
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
              .contains(" 200 ");
          s.getOutputStream().write("hello".getBytes(StandardCharsets.US_ASCII));
          long got = 0;
          try {
            InputStream in = s.getInputStream();
            byte[] buf = new byte[65536];
            int n;
            while ((n = in.read(buf)) > 0) {
              got += n;
            }
          } catch (IOException reset) {
            // passed on as a reset: also an end
          }
          assertThat(got).isLessThanOrEqualTo(256 * 1024);
        }
        stillHealthy(p, "an upstream reset");
        assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
            .contains("\"event\":\"close\"").contains("\"bytesUp\":5,"));
      }
    }
  }

  static long allocatorMemory() {
    var m = ((ByteBufAllocatorMetricProvider) ByteBufAllocator.DEFAULT).metric();
    return m.usedDirectMemory() + m.usedHeapMemory();
  }

  @Test
  void anUpstreamThatNeverReadsStopsTheClientAndBoundsTheProxysMemory(@TempDir Path dir)
      throws Exception {
    try (ServerSocket origin = new ServerSocket()) {
      origin.setReceiveBufferSize(64 * 1024);
      origin.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
      Socket[] held = new Socket[1];
      daemon("deaf-origin", () -> {
        try {
          held[0] = origin.accept(); // and never read
        } catch (IOException e) {
          // closed by the test
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""),
          dir.resolve("decisions.jsonl"))) {
        long before = allocatorMemory();
        AtomicLong written = new AtomicLong();
        try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
          s.setSendBufferSize(64 * 1024);
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
              .contains(" 200 ");
          long limit = 512L * 1024 * 1024;
          OutputStream out = s.getOutputStream();
          daemon("eager-client", () -> {
            byte[] chunk = new byte[64 * 1024];
            try {
              while (written.get() < limit) {
                out.write(chunk);
                written.addAndGet(chunk.length);
              }
            } catch (IOException e) {
              // closed by the test
            }
          });
          long[] last = {-1};
          DataPlaneTest.await("the client's writes to block", () -> {
            long now = written.get();
            boolean stalled = now == last[0] && now > 0;
            last[0] = now;
            sleep(500);
            return stalled;
          });
          assertThat(written.get()).as("what the client could push before it was stopped")
              .isLessThan(64L * 1024 * 1024);
          long proxyHeld = allocatorMemory() - before;
          // The proxy holds at most its write-buffer high water mark and one read for the deaf
          // upstream; the allocator works in chunks, so allow a few of them.
          assertThat(proxyHeld).as("buffer memory the proxy holds").isLessThan(8L * 1024 * 1024);
        }
        if (held[0] != null) {
          held[0].close();
        }
        stillHealthy(p, "an upstream that never reads");
      }
    }
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Test
  void aNameServerThatNeverAnswersGetsA504WithinTheDnsTimeout(@TempDir Path dir)
      throws Exception {
    try (ProxyFixture p = new ProxyFixture(yaml(443, ""), dir.resolve("decisions.jsonl"))) {
      int queries = silentDns.queries.get();
      long start = System.nanoTime();
      try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
        assertThat(DataPlaneTest.connect(s, "unpinned.allowed.test:443")).contains(" 504 ");
      }
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      assertThat(took).as("timeouts.dns is 1s").isLessThan(Duration.ofMillis(1800));
      assertThat(silentDns.queries.get()).isGreaterThan(queries);
      stillHealthy(p, "a silent name server");
      assertThat(p.closeAndReadLog()).anySatisfy(l -> assertThat(l)
          .contains("\"host\":\"unpinned.allowed.test\"").contains("\"reason\":\"dns-timeout\""));
    }
  }

  /** A small tmpfs at {@code dir}, or the test is skipped (it needs root and mount). */
  static void mountTmpfs(Path dir, String options) throws Exception {
    Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir.toString())
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    Assumptions.assumeTrue(p.waitFor() == 0,
        "skipped: cannot mount a tmpfs for the full or read-only filesystem (needs root): " + out);
  }

  static void umount(Path dir) throws Exception {
    new ProcessBuilder("umount", "-l", dir.toString()).inheritIO().start().waitFor();
  }

  /** Tunnels and refusals while the log cannot be written; every line is counted as dropped. */
  static void trafficWithAnUnwritableLog(Path log, String what) throws Exception {
    try (ServerSocket origin = origin()) {
      daemon("echo-origin", () -> {
        while (!origin.isClosed()) {
          try (Socket s = origin.accept()) {
            s.getOutputStream().write(s.getInputStream().readAllBytes());
          } catch (IOException e) {
            return;
          }
        }
      });
      try (ProxyFixture p = new ProxyFixture(yaml(origin.getLocalPort(), ""), log)) {
        for (int i = 0; i < 10; i++) {
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + origin.getLocalPort()))
                .contains(" 200 ");
            s.getOutputStream().write(("line " + i).getBytes(StandardCharsets.US_ASCII));
            s.shutdownOutput();
            assertThat(new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII))
                .isEqualTo("line " + i);
          }
          try (Socket s = DataPlaneTest.socket(p.port("explicit"))) {
            assertThat(DataPlaneTest.connect(s, "evil.example:443")).contains(" 403 ");
          }
        }
        DataPlaneTest.await("the tunnels to close", () -> p.server.runtime().limits().open() == 0);
        // 10 allows with their close events and 10 denials: 30 lines, none written.
        DataPlaneTest.await("30 lines counted as dropped", () -> p.log.dropped() == 30);
        assertThat(p.log.written()).isZero();
        assertThat(p.metrics.scrape()).contains("egress_decision_log_dropped_total 30.0");
        stillHealthy(p, what);
      }
    }
  }

  @Test
  void aFullFilesystemUnderTheDecisionLog(@TempDir Path dir) throws Exception {
    Path mnt = Files.createDirectory(dir.resolve("full"));
    mountTmpfs(mnt, "size=64k");
    try {
      try (OutputStream filler = Files.newOutputStream(mnt.resolve("filler"))) {
        byte[] block = new byte[4096];
        for (int i = 0; i < 1000; i++) {
          filler.write(block);
          filler.flush();
        }
      } catch (IOException full) {
        // no space left: as wanted
      }
      trafficWithAnUnwritableLog(mnt.resolve("decisions.jsonl"), "a full filesystem");
    } finally {
      umount(mnt);
    }
  }

  @Test
  void aReadOnlyFilesystemUnderTheDecisionLog(@TempDir Path dir) throws Exception {
    Path mnt = Files.createDirectory(dir.resolve("ro"));
    mountTmpfs(mnt, "size=64k,ro");
    try {
      trafficWithAnUnwritableLog(mnt.resolve("decisions.jsonl"), "a read-only filesystem");
    } finally {
      umount(mnt);
    }
  }
}
