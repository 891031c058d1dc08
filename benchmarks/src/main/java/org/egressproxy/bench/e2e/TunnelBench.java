package org.egressproxy.bench.e2e;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.egressproxy.net.Transport;

/**
 * End-to-end tunnel figures on loopback, the proxy against a direct connection in the same run,
 * interleaved (direct, proxy, direct, proxy ...), the proxy with its decision log on:
 *
 * <ul>
 *   <li>bulk: one connection reading {@code MiB} MiB from an origin that streams them, MB/s;
 *   <li>set-up: 32 concurrent clients opening connections (direct: TCP connect + 1 byte from
 *       the origin; proxy: TCP connect + CONNECT + 200 + 1 byte), p50/p99 in ms.
 * </ul>
 *
 * <pre>
 * mvn -B -q package -DskipTests
 * java -cp benchmarks/target/benchmarks.jar org.egressproxy.bench.e2e.TunnelBench [MiB] [rounds] [proxy jar]
 * </pre>
 */
public final class TunnelBench {
  private static final int WARMUP = 2;

  private TunnelBench() {}

  public static void main(String[] args) throws Exception {
    int mib = args.length > 0 ? Integer.parseInt(args[0]) : 512;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    String jar = args.length > 2 ? args[2] : "proxy/target/egress-proxy.jar";
    Transport transport = Transport.select();
    EventLoopGroup originGroup = transport.newGroup(1, "origin");
    Channel bulk = origin(transport, originGroup, (long) mib << 20);
    Channel tiny = origin(transport, originGroup, 1);
    int bulkPort = ((InetSocketAddress) bulk.localAddress()).getPort();
    int tinyPort = ((InetSocketAddress) tiny.localAddress()).getPort();
    Path log = Files.createTempFile("tunnelbench", ".jsonl");
    int proxyPort;
    try (java.net.ServerSocket probe = new java.net.ServerSocket(0)) {
      proxyPort = probe.getLocalPort();
    }
    String yaml = """
        listeners:
          - {name: explicit, mode: http-proxy, bind: "127.0.0.1:%d"}
        policy:
          rules:
            - allow: bench.test
              ports: [%d, %d]
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts: {bench.test: 127.0.0.1}
        decisionLog: {path: "%s"}
        """.formatted(proxyPort, bulkPort, tinyPort, log);
    Path config = Files.createTempFile("tunnelbench", ".yaml");
    Files.writeString(config, yaml);
    // The proxy runs as operators run it: its own JVM, from the jar, decision log on.
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    String extra = System.getenv("PROXY_JVM_ARGS"); // e.g. a JFR recording for profiling
    if (extra != null && !extra.isBlank()) {
      command.addAll(Arrays.asList(extra.trim().split("\\s+")));
    }
    command.addAll(List.of("-jar", jar, "run", "--config", config.toString()));
    Process proxy = new ProcessBuilder(command).redirectErrorStream(true).start();
    java.io.BufferedReader out = new java.io.BufferedReader(
        new java.io.InputStreamReader(proxy.getInputStream(), StandardCharsets.UTF_8));
    String line;
    while ((line = out.readLine()) != null && !line.contains("ready.")) {
      System.out.println("  proxy: " + line);
    }
    if (line == null) {
      throw new IllegalStateException("the proxy did not start");
    }
    System.out.printf("transport (origin) %s, %d MiB per bulk run, %d rounds after %d warm-up,"
        + " %d cores, java %s%n", transport.name(), mib, rounds, WARMUP,
        Runtime.getRuntime().availableProcessors(), System.getProperty("java.version"));
    for (int w = 0; w < WARMUP; w++) {
      bulk(-1, bulkPort);
      bulk(proxyPort, bulkPort);
      setup(-1, tinyPort, 32, 100);
      setup(proxyPort, tinyPort, 32, 100);
    }

    double[] direct = new double[rounds];
    double[] proxied = new double[rounds];
    for (int r = 0; r < rounds; r++) {
      direct[r] = bulk(-1, bulkPort);
      proxied[r] = bulk(proxyPort, bulkPort);
      System.out.printf("bulk round %d: direct %.0f MB/s, proxy %.0f MB/s%n", r + 1, direct[r],
          proxied[r]);
    }
    System.out.printf("BULK median: direct %.0f MB/s, proxy %.0f MB/s, ratio %.2f%n",
        median(direct), median(proxied), median(proxied) / median(direct));

    int clients = 32;
    int perClient = 200;
    for (int r = 0; r < Math.min(rounds, 3); r++) {
      long[] d = setup(-1, tinyPort, clients, perClient);
      long[] p = setup(proxyPort, tinyPort, clients, perClient);
      System.out.printf("SETUP round %d (%d clients x %d): direct p50 %.3f p99 %.3f ms;"
              + " proxy p50 %.3f p99 %.3f ms; added p99 %.3f ms%n", r + 1, clients, perClient,
          pct(d, 50), pct(d, 99), pct(p, 50), pct(p, 99), pct(p, 99) - pct(d, 99));
    }
    proxy.destroy();
    proxy.waitFor();
    try (java.util.stream.Stream<String> lines = Files.lines(log)) {
      System.out.printf("decision log: %d lines (%s)%n", lines.count(), log);
    }
    originGroup.shutdownGracefully().sync();
  }

  /** An origin that writes {@code bytes} zero bytes to each connection, then closes it. */
  static Channel origin(Transport t, EventLoopGroup group, long bytes) throws Exception {
    return new ServerBootstrap().group(group).channel(t.serverChannel())
        .childHandler(new ChannelInitializer<>() {
          @Override
          protected void initChannel(Channel ch) {
            ch.pipeline().addLast(new ChannelInboundHandlerAdapter() {
              long left = bytes;

              @Override
              public void channelActive(ChannelHandlerContext ctx) {
                pump(ctx);
              }

              @Override
              public void channelWritabilityChanged(ChannelHandlerContext ctx) {
                pump(ctx);
              }

              void pump(ChannelHandlerContext ctx) {
                while (left > 0 && ctx.channel().isWritable()) {
                  int n = (int) Math.min(left, 256 * 1024);
                  ByteBuf b = ctx.alloc().directBuffer(n).writeZero(n);
                  left -= n;
                  if (left == 0) {
                    ctx.writeAndFlush(b).addListener(ChannelFutureListener.CLOSE);
                    return;
                  }
                  ctx.write(b);
                }
                ctx.flush();
              }

              @Override
              public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ReferenceCountUtil.release(msg);
              }
            });
          }
        }).bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
  }

  static Socket open(int proxyPort, int originPort) throws IOException {
    Socket s = new Socket();
    s.setTcpNoDelay(true);
    if (proxyPort < 0) {
      s.connect(new InetSocketAddress("127.0.0.1", originPort));
      return s;
    }
    s.connect(new InetSocketAddress("127.0.0.1", proxyPort));
    s.getOutputStream().write(("CONNECT bench.test:" + originPort + " HTTP/1.1\r\nHost: bench.test:"
        + originPort + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
    InputStream in = s.getInputStream();
    int state = 0;
    StringBuilder head = new StringBuilder();
    while (state < 4) {
      int c = in.read();
      if (c < 0) {
        throw new IOException("proxy closed: " + head);
      }
      head.append((char) c);
      state = (c == '\r' && (state == 0 || state == 2)) || (c == '\n' && (state == 1 || state == 3))
          ? state + 1 : 0;
    }
    if (!head.toString().startsWith("HTTP/1.1 200")) {
      throw new IOException("CONNECT refused: " + head);
    }
    return s;
  }

  /** MB/s reading everything the bulk origin sends. */
  static double bulk(int proxyPort, int originPort) throws IOException {
    long start = System.nanoTime();
    long total = 0;
    try (Socket s = open(proxyPort, originPort)) {
      byte[] buf = new byte[256 * 1024];
      InputStream in = s.getInputStream();
      int n;
      while ((n = in.read(buf)) >= 0) {
        total += n;
      }
    }
    return total / 1e6 / ((System.nanoTime() - start) / 1e9);
  }

  /** Per-connection set-up latencies in nanoseconds: open (and CONNECT), first byte, close. */
  static long[] setup(int proxyPort, int originPort, int clients, int perClient)
      throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    List<Future<long[]>> futures = new ArrayList<>();
    for (int c = 0; c < clients; c++) {
      futures.add(pool.submit(() -> {
        long[] out = new long[perClient];
        for (int i = 0; i < perClient; i++) {
          long t0 = System.nanoTime();
          try (Socket s = open(proxyPort, originPort)) {
            if (s.getInputStream().read() < 0) {
              throw new IOException("no byte from the origin");
            }
          }
          out[i] = System.nanoTime() - t0;
        }
        return out;
      }));
    }
    long[] all = new long[clients * perClient];
    int k = 0;
    for (Future<long[]> f : futures) {
      for (long v : f.get()) {
        all[k++] = v;
      }
    }
    pool.shutdown();
    Arrays.sort(all);
    return all;
  }

  static double pct(long[] sorted, int p) {
    return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)]
        / 1e6;
  }

  static double median(double[] v) {
    double[] c = v.clone();
    Arrays.sort(c);
    return c[c.length / 2];
  }
}
