package org.egressproxy.bench.peers;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.egressproxy.net.Transport;

/**
 * The load generator of {@code benchmarks/peers/run.sh} for what wrk cannot do: requests through
 * a CONNECT tunnel, and idle tunnels. Every peer gets the same client; {@code --via} says how it
 * reaches the origin:
 *
 * <ul>
 *   <li>{@code connect}: a CONNECT to {@code --target} on the proxy at {@code --addr}, the 200,
 *       then HTTP inside the tunnel (our proxy, Squid);
 *   <li>{@code tcp}: HTTP straight to {@code --addr} (the origin itself for the direct row, or a
 *       TCP relay: HAProxy, nginx stream).
 * </ul>
 *
 * Modes (one JSON line of results on standard output):
 *
 * <pre>
 * bulk  --via V --addr H:P [--target T] --path /big --seconds S [--warmup W]
 *       one connection, GET PATH repeatedly (kept alive) for at least S seconds: MB/s
 * short --via V --addr H:P [--target T] --path /small --concurrency 32 --seconds S [--warmup W]
 *       [--pids P,...]
 *       new connection, [CONNECT, 200,] GET (Connection: close), response to the origin's close;
 *       C at once, one event loop: connections/s, p50/p99 ms; with --pids, the CPU time those
 *       processes (and their children) used during the measurement, in microseconds per
 *       connection: what a connection costs the peer, a steadier figure than the rate on a
 *       machine whose cores the load and the origin share
 * paced --via V --addr H:P [--target T] --path /small --rate R --concurrency 32 --seconds S
 *       [--warmup W]
 *       what short does, but started at R connections a second (open loop) with at most C in
 *       flight: the latency of one set-up at that rate, not the queue a saturating closed loop
 *       builds (there, latency is concurrency / rate whatever the peer does). Latency counts
 *       from when a connection was due, so a stalled peer is not hidden; a connection due while
 *       C are in flight is not started and counted as "skipped". Run it with a young generation
 *       that does not fill in one measurement (java -Xms2g -Xmx2g -Xmn1g ...): with the default
 *       heap its own 3-8 ms collections land in every row's p99. Not for the saturating modes,
 *       where the big young generation costs it ~10 % of its rate (RESULTS.md, 2026-12-07)
 * cpu   --pids P,...
 *       user + system CPU time of the pids and their descendants so far, in clock ticks (the
 *       script brackets wrk runs with it)
 * idle  --via V --addr H:P [--target T] --path /small --count N --pids P,... [--jcmd PID]
 *       N tunnels each after one kept-alive GET, held open; RSS of the pids (and their
 *       children) before and after, in KB (with --jcmd PID, each after a GC.run of that JVM,
 *       whose live heap is given too)
 * </pre>
 *
 * {@code --warmup W}: the same load for W seconds first, not counted (this JVM's JIT compiles
 * the client; the peer warms up too). Every loop ends by its deadline or count; connections that fail are counted, not retried.
 */
public final class PeerLoad {
  private PeerLoad() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = options(args);
    String mode = args.length > 0 ? args[0] : "";
    if (mode.equals("cpu")) {
      System.out.println(cpuTicks(o.get("pids")));
      return;
    }
    Target t = new Target(o.get("via"), hostPort(o.get("addr")), o.getOrDefault("target", ""),
        o.getOrDefault("path", "/small"));
    double warmup = Double.parseDouble(o.getOrDefault("warmup", "0"));
    switch (mode) {
      case "bulk" -> {
        if (warmup > 0) {
          bulk(t, warmup); // this JVM's JIT, and the peer's buffers and caches
        }
        System.out.println(bulk(t, Double.parseDouble(o.get("seconds"))));
      }
      case "short" -> {
        int concurrency = Integer.parseInt(o.getOrDefault("concurrency", "32"));
        if (warmup > 0) {
          shortConnections(t, concurrency, warmup, null);
        }
        System.out.println(shortConnections(t, concurrency,
            Double.parseDouble(o.get("seconds")), o.get("pids")));
      }
      case "paced" -> {
        double rate = Double.parseDouble(o.get("rate"));
        int concurrency = Integer.parseInt(o.getOrDefault("concurrency", "32"));
        if (warmup > 0) {
          paced(t, rate, concurrency, warmup);
        }
        System.out.println(paced(t, rate, concurrency, Double.parseDouble(o.get("seconds"))));
      }
      case "idle" -> System.out.println(idle(t, Integer.parseInt(o.get("count")),
          o.get("pids"), o.get("jcmd")));
      default -> {
        System.err.println("usage: PeerLoad bulk|short|idle --via connect|tcp --addr H:P ...");
        System.exit(2);
      }
    }
  }

  /** Where the requests go and how. */
  record Target(String via, InetSocketAddress addr, String target, String path) {
    Target {
      if (!"connect".equals(via) && !"tcp".equals(via)) {
        throw new IllegalArgumentException("--via connect|tcp, not " + via);
      }
    }

    boolean connect() {
      return via.equals("connect");
    }

    String host() {
      int colon = target.lastIndexOf(':');
      return target.isEmpty() ? addr.getHostString() : colon > 0 ? target.substring(0, colon)
          : target;
    }

    byte[] connectHead() {
      return ("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII);
    }

    byte[] get(boolean close) {
      return ("GET " + path + " HTTP/1.1\r\nHost: " + host() + "\r\n"
          + (close ? "Connection: close\r\n" : "") + "\r\n").getBytes(StandardCharsets.US_ASCII);
    }
  }

  // ---- bulk ----------------------------------------------------------------------------------

  static String bulk(Target t, double seconds) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (SocketChannel ch = SocketChannel.open(t.addr())) {
      ch.socket().setTcpNoDelay(true);
      if (t.connect()) {
        write(ch, t.connectHead());
        Head h = readHead(ch, buf);
        if (h.status != 200) {
          throw new IOException("CONNECT answered " + h.status);
        }
      }
      long start = System.nanoTime();
      long deadline = start + (long) (seconds * 1e9);
      long bytes = 0;
      int downloads = 0;
      byte[] get = t.get(false);
      do {
        write(ch, get);
        Head h = readHead(ch, buf);
        if (h.status != 200 || h.contentLength < 0) {
          throw new IOException("GET answered " + h.status + ", length " + h.contentLength);
        }
        long left = h.contentLength - buf.remaining();
        buf.clear();
        while (left > 0) {
          int n = ch.read(buf);
          if (n < 0) {
            throw new IOException("closed with " + left + " bytes to come");
          }
          left -= n;
          buf.clear();
        }
        bytes += h.contentLength;
        downloads++;
      } while (System.nanoTime() < deadline);
      double s = (System.nanoTime() - start) / 1e9;
      return String.format("{\"mode\":\"bulk\",\"downloads\":%d,\"bytes\":%d,\"seconds\":%.3f,"
          + "\"MBps\":%.1f}", downloads, bytes, s, bytes / s / 1e6);
    }
  }

  record Head(int status, long contentLength) {}

  /** Reads a response head into {@code buf}; on return buf holds the body bytes read past it. */
  static Head readHead(SocketChannel ch, ByteBuffer buf) throws IOException {
    buf.clear();
    int end;
    while ((end = headEnd(buf, 0, buf.position())) < 0) {
      if (ch.read(buf) < 0) {
        throw new IOException("closed before the end of a response head");
      }
    }
    byte[] head = new byte[end];
    buf.flip();
    buf.get(head);
    Head h = parseHead(new String(head, StandardCharsets.ISO_8859_1));
    return h; // buf: position after the head, limit at what was read
  }

  static int headEnd(ByteBuffer b, int from, int to) {
    for (int i = Math.max(from, 3); i < to; i++) {
      if (b.get(i) == '\n' && b.get(i - 1) == '\r' && b.get(i - 2) == '\n'
          && b.get(i - 3) == '\r') {
        return i + 1;
      }
    }
    return -1;
  }

  static Head parseHead(String head) {
    int status = head.length() >= 12 ? Integer.parseInt(head.substring(9, 12)) : -1;
    long length = -1;
    for (String line : head.split("\r\n")) {
      if (line.regionMatches(true, 0, "content-length:", 0, 15)) {
        length = Long.parseLong(line.substring(15).trim());
      }
    }
    return new Head(status, length);
  }

  static void write(SocketChannel ch, byte[] bytes) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(bytes);
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }

  // ---- short and idle: one Netty event loop ---------------------------------------------------

  /**
   * One client connection's exchange: [CONNECT, 200,] GET, the response head and body. Calls
   * {@code done} once, with whether a 200 response arrived in full (to the close, or to its
   * Content-Length when {@code keepOpen}).
   */
  static final class Exchange extends ChannelInboundHandlerAdapter {
    private final Target t;
    private final boolean keepOpen;
    private final Done done;
    private final StringBuilder head = new StringBuilder(256);
    private boolean tunnelUp;
    private int status = -1;
    private long contentLength = -1;
    private long body;
    private boolean finished;

    interface Done {
      void done(Channel ch, boolean ok);
    }

    Exchange(Target t, boolean keepOpen, Done done) {
      this.t = t;
      this.keepOpen = keepOpen;
      this.done = done;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      ctx.writeAndFlush(Unpooled.wrappedBuffer(t.connect() ? t.connectHead() : t.get(!keepOpen)));
      tunnelUp = !t.connect();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      ByteBuf b = (ByteBuf) msg;
      try {
        while (b.isReadable() && !finished) {
          if (status < 0) {
            head.append((char) b.readByte());
            int n = head.length();
            if (n >= 4 && head.charAt(n - 1) == '\n' && head.charAt(n - 4) == '\r'
                && head.charAt(n - 2) == '\r') {
              Head h = parseHead(head.toString());
              head.setLength(0);
              if (!tunnelUp) {
                if (h.status() != 200) {
                  finish(ctx, false);
                  return;
                }
                tunnelUp = true;
                ctx.writeAndFlush(Unpooled.wrappedBuffer(t.get(!keepOpen)));
                continue;
              }
              status = h.status();
              contentLength = h.contentLength();
              if (keepOpen && contentLength == 0) {
                finish(ctx, status == 200);
              }
            }
          } else {
            int n = b.readableBytes();
            body += n;
            b.skipBytes(n);
            if (keepOpen && contentLength >= 0 && body >= contentLength) {
              finish(ctx, status == 200);
            }
          }
        }
      } finally {
        b.release();
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      finish(ctx, !keepOpen && status == 200 && (contentLength < 0 || body >= contentLength));
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }

    private void finish(ChannelHandlerContext ctx, boolean ok) {
      if (!finished) {
        finished = true;
        done.done(ctx.channel(), ok);
        if (!ok && ctx.channel().isActive()) {
          ctx.close();
        }
      }
    }
  }

  static Bootstrap bootstrap(Transport transport, EventLoopGroup group) {
    return new Bootstrap().group(group).channel(transport.socketChannel())
        .option(ChannelOption.TCP_NODELAY, true)
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000);
  }

  static String shortConnections(Target t, int concurrency, double seconds, String pids)
      throws Exception {
    Transport transport = Transport.select();
    long cpuBefore = pids == null ? 0 : cpuTicks(pids);
    EventLoopGroup group = transport.newGroup(1, "load");
    try {
      Bootstrap b = bootstrap(transport, group);
      long[] latencies = new long[1 << 22];
      int[] counts = new int[2]; // ok, failed
      long start = System.nanoTime();
      long deadline = start + (long) (seconds * 1e9);
      CountDownLatch slotsDone = new CountDownLatch(concurrency);
      Runnable[] next = new Runnable[1];
      next[0] = () -> {
        if (System.nanoTime() >= deadline) {
          slotsDone.countDown();
          return;
        }
        long t0 = System.nanoTime();
        Exchange.Done done = (ch, ok) -> {
          if (ok && counts[0] < latencies.length) {
            latencies[counts[0]++] = System.nanoTime() - t0;
          } else if (!ok) {
            counts[1]++;
          }
          ch.eventLoop().execute(next[0]);
        };
        ChannelFuture f = b.clone().handler(new Exchange(t, false, done)).connect(t.addr());
        f.addListener(c -> {
          if (!c.isSuccess()) {
            counts[1]++;
            group.next().execute(next[0]);
          }
        });
      };
      for (int i = 0; i < concurrency; i++) {
        group.next().execute(next[0]);
      }
      if (!slotsDone.await((long) (seconds * 1e9) + 30_000_000_000L, TimeUnit.NANOSECONDS)) {
        throw new IllegalStateException("connections still open 30 s after the deadline");
      }
      double s = (System.nanoTime() - start) / 1e9;
      long[] done = new long[counts[0]];
      group.submit(() -> System.arraycopy(latencies, 0, done, 0, done.length)).sync();
      String cpu = pids == null || done.length == 0 ? "" : String.format(",\"cpuUsPerConn\":%.1f",
          (cpuTicks(pids) - cpuBefore) * (1e6 / TICKS_PER_SECOND) / done.length);
      Arrays.sort(done);
      return String.format("{\"mode\":\"short\",\"ok\":%d,\"failed\":%d,\"seconds\":%.3f,"
          + "\"connsPerSec\":%.1f,\"p50ms\":%.3f,\"p99ms\":%.3f%s}", done.length, counts[1], s,
          done.length / s, pct(done, 50), pct(done, 99), cpu);
    } finally {
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  static String paced(Target t, double rate, int maxInFlight, double seconds) throws Exception {
    Transport transport = Transport.select();
    EventLoopGroup group = transport.newGroup(1, "load");
    try {
      EventLoop loop = group.next();
      Bootstrap b = bootstrap(transport, group);
      long[] latencies = new long[(int) Math.min(1 << 22, rate * seconds + 16)];
      long[] counts = new long[4]; // ok, failed, skipped, launched
      int[] inFlight = new int[1];
      long start = System.nanoTime();
      long end = start + (long) (seconds * 1e9);
      CountDownLatch finished = new CountDownLatch(1);
      Runnable[] tick = new Runnable[1];
      tick[0] = () -> {
        long now = System.nanoTime();
        long due = (long) ((Math.min(now, end) - start) * rate / 1e9);
        for (; counts[3] < due; counts[3]++) {
          long t0 = start + (long) (counts[3] * 1e9 / rate); // when it was due
          if (inFlight[0] >= maxInFlight) {
            counts[2]++;
            continue;
          }
          inFlight[0]++;
          Exchange.Done done = (ch, ok) -> {
            inFlight[0]--;
            if (ok && counts[0] < latencies.length) {
              latencies[(int) counts[0]++] = System.nanoTime() - t0;
            } else if (!ok) {
              counts[1]++;
            }
          };
          b.clone().handler(new Exchange(t, false, done)).connect(t.addr()).addListener(c -> {
            if (!c.isSuccess()) {
              inFlight[0]--;
              counts[1]++;
            }
          });
        }
        if (now < end || inFlight[0] > 0 && now < end + 30_000_000_000L) {
          loop.schedule(tick[0], 200, TimeUnit.MICROSECONDS);
        } else {
          finished.countDown();
        }
      };
      loop.execute(tick[0]);
      finished.await((long) (seconds * 1e9) + 60_000_000_000L, TimeUnit.NANOSECONDS);
      long[] done = new long[(int) counts[0]];
      long[] c = new long[4];
      loop.submit(() -> {
        System.arraycopy(latencies, 0, done, 0, done.length);
        System.arraycopy(counts, 0, c, 0, 4);
      }).sync();
      Arrays.sort(done);
      return String.format("{\"mode\":\"paced\",\"rate\":%.0f,\"ok\":%d,\"failed\":%d,"
          + "\"skipped\":%d,\"p50ms\":%.3f,\"p99ms\":%.3f,\"p999ms\":%.3f}", rate, c[0], c[1],
          c[2], pct(done, 50), pct(done, 99), pct(done, 99.9));
    } finally {
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  /** The p-th percentile of sorted nanoseconds, in milliseconds. */
  static double pct(long[] sorted, double p) {
    if (sorted.length == 0) {
      return Double.NaN;
    }
    return sorted[Math.min(sorted.length - 1, (int) (sorted.length * (p / 100.0)))] / 1e6;
  }

  static String idle(Target t, int count, String pids, String jcmd) throws Exception {
    Transport transport = Transport.select();
    EventLoopGroup group = transport.newGroup(1, "load");
    List<Channel> open = new ArrayList<>(count);
    try {
      long before = jcmd == null ? rss(pids) : gcThenRss(jcmd, pids);
      long heapBefore = jcmd == null ? 0 : heapUsedKb(jcmd);
      Bootstrap b = bootstrap(transport, group);
      int inFlight = 200;
      int[] state = new int[3]; // started, ok, failed
      CountDownLatch all = new CountDownLatch(count);
      Runnable[] next = new Runnable[1];
      next[0] = () -> {
        if (state[0] >= count) {
          return;
        }
        state[0]++;
        Exchange.Done done = (ch, ok) -> {
          state[ok ? 1 : 2]++;
          if (ok) {
            open.add(ch);
          }
          all.countDown();
          next[0].run();
        };
        b.clone().handler(new Exchange(t, true, done)).connect(t.addr()).addListener(c -> {
          if (!c.isSuccess()) {
            state[2]++;
            all.countDown();
            group.next().execute(next[0]);
          }
        });
      };
      for (int i = 0; i < Math.min(inFlight, count); i++) {
        group.next().execute(next[0]);
      }
      if (!all.await(120, TimeUnit.SECONDS)) {
        throw new IllegalStateException("tunnels not set up within 120 s");
      }
      Thread.sleep(2000); // let the peers settle (lazy frees, worker hand-offs)
      int ok = group.submit(() -> state[1]).get();
      int failed = group.submit(() -> state[2]).get();
      long after = jcmd == null ? rss(pids) : gcThenRss(jcmd, pids);
      long heapAfter = jcmd == null ? 0 : heapUsedKb(jcmd);
      int stillOpen = group.submit(() -> (int) open.stream().filter(Channel::isActive).count())
          .get();
      return String.format("{\"mode\":\"idle\",\"ok\":%d,\"failed\":%d,\"open\":%d,"
          + "\"rssBeforeKB\":%d,\"rssAfterKB\":%d,\"KBperTunnel\":%.2f,"
          + "\"heapKBperTunnel\":%.2f}",
          ok, failed, stillOpen, before, after, (after - before) / (double) Math.max(1, ok),
          (heapAfter - heapBefore) / (double) Math.max(1, ok));
    } finally {
      group.submit(() -> open.forEach(Channel::close)).sync();
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  /** Linux's USER_HZ, the unit of the times in /proc/PID/stat (100 on every common build). */
  static final double TICKS_PER_SECOND = 100;

  /** User and system CPU time of the pids and all their descendants, in clock ticks. */
  static long cpuTicks(String pids) throws IOException {
    return sumOverProcesses(pids, "stat", stat -> {
      // after "(comm)", which may hold spaces: state is field 3, utime 14 and stime 15
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    });
  }

  /** VmRSS of the pids and all their descendants, in KB. */
  static long rss(String pids) throws IOException {
    return sumOverProcesses(pids, "status", status -> status.lines()
        .filter(l -> l.startsWith("VmRSS:"))
        .mapToLong(l -> Long.parseLong(l.replaceAll("[^0-9]", ""))).sum());
  }

  /** {@code value} of /proc/PID/{@code file}, summed over the pids and their descendants. */
  static long sumOverProcesses(String pids, String file,
      java.util.function.ToLongFunction<String> value) throws IOException {
    long sum = 0;
    for (String pid : descendants(pids)) {
      Path p = Path.of("/proc", pid, file);
      if (Files.exists(p)) {
        sum += value.applyAsLong(Files.readString(p));
      }
    }
    return sum;
  }

  static List<String> descendants(String pids) throws IOException {
    List<String> out = new ArrayList<>();
    List<String> todo = new ArrayList<>(Arrays.asList(pids.split(",")));
    while (!todo.isEmpty()) {
      String pid = todo.remove(todo.size() - 1).trim();
      if (pid.isEmpty() || out.contains(pid)) {
        continue;
      }
      out.add(pid);
      Path children = Path.of("/proc", pid, "task", pid, "children");
      if (Files.exists(children)) {
        todo.addAll(Arrays.asList(Files.readString(children).trim().split("\\s+")));
      }
    }
    return out;
  }

  static long gcThenRss(String jvmPid, String pids) throws Exception {
    jcmd(jvmPid, "GC.run");
    Thread.sleep(500);
    return rss(pids);
  }

  /** The JVM's heap in use (after a GC.run: live objects), from {@code jcmd GC.heap_info}. */
  static long heapUsedKb(String jvmPid) throws Exception {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("used (\\d+)K")
        .matcher(jcmd(jvmPid, "GC.heap_info"));
    return m.find() ? Long.parseLong(m.group(1)) : 0;
  }

  static String jcmd(String jvmPid, String command) throws Exception {
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd")
        .toString(), jvmPid, command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroy();
    }
    return out;
  }

  static InetSocketAddress hostPort(String s) {
    if (s == null) {
      throw new IllegalArgumentException("--addr HOST:PORT is required");
    }
    int colon = s.lastIndexOf(':');
    return new InetSocketAddress(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
  }

  static Map<String, String> options(String[] args) {
    Map<String, String> o = new HashMap<>();
    for (int i = 1; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --option, got " + args[i]);
      }
      o.put(args[i].substring(2), args[i + 1]);
    }
    return o;
  }
}
