package org.egressproxy.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.random.RandomGenerator;
import org.egressproxy.NettyLeakCheck;
import org.egressproxy.net.Transport;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Clients and origins that misbehave at random points of a connection's life, many at once,
 * through every listener mode: resets before, during and after the request head, FINs followed
 * by resets, clients that close with answers unread, origins that reset, close at once, stall,
 * send their FIN first, stream more than the client reads, or answer HTTP requests with a reset,
 * a FIN, a cut-off body or something that is not HTTP. Each client connection follows a
 * scenario drawn from a seeded generator (the seed is printed and can be given back with
 * {@code -Dchaos.seed=N}); what the threads make of it is up to the machine.
 *
 * <p>Whatever happens, afterwards: the proxy holds no connection and no upstream connection
 * (every origin socket was closed from the proxy's side), no buffer leaked, every tunnel that
 * was allowed has its {@code close} line, a clean echo went through byte for byte and its close
 * line counts exactly those bytes, HTTP answers are whole (or a 502 when the origin failed
 * before its answer), and nothing a client waited for timed out. Run on epoll and on NIO.
 */
class ChaosTest {
  /** What a raw (tunnel) origin does with each connection, one listening port per behaviour. */
  enum Raw { ECHO, BURST, RESET, CLOSE, STALL, FIN_FIRST }

  /** What an HTTP origin does with each request, one listening port per behaviour. */
  enum Web {
    OK, CLOSE_AFTER, RESET_BEFORE, FIN_BEFORE, RESET_MID, BIG, SLOW, NOT_HTTP, CHUNKED,
    UNTIL_CLOSE, CONTINUE, EARLY
  }

  /** How a client ends its connection. */
  enum End { CLEAN, RESET_IN_HEAD, RESET_LATE, CLOSE_UNREAD, FIN_THEN_RESET }

  static final int CLIENTS = Integer.getInteger("chaos.clients", 1000);
  static final int CONCURRENCY = 24;
  static final int BIG = 256 * 1024;
  static final int DNS_NAMES = 2000;
  /**
   * maxConnectionsPerClient: four times what the clients (all from 127.0.0.1) hold at once -
   * the proxy counts a connection until it has closed its side, which can be a while after the
   * client let it go (a tunnel waiting for a stalled origin, a lingering close).
   */
  static final int PER_CLIENT = 4 * CONCURRENCY;

  /** An origin on 127.0.0.1 serving each accepted socket on a thread of its own. */
  abstract static class Origin implements AutoCloseable {
    final ServerSocket server;
    final AtomicInteger open = new AtomicInteger();
    final AtomicInteger accepted = new AtomicInteger();
    final Thread acceptor;

    Origin(String name) throws IOException {
      server = new ServerSocket(0, 200, InetAddress.getLoopbackAddress());
      acceptor = FaultTest.daemon("origin-" + name, () -> {
        while (!server.isClosed()) {
          Socket s;
          try {
            s = server.accept();
          } catch (IOException e) {
            return;
          }
          open.incrementAndGet();
          accepted.incrementAndGet();
          FaultTest.daemon("origin-" + name + "-conn", () -> {
            try (s) {
              s.setSoTimeout(30_000);
              serve(s);
            } catch (IOException e) {
              // the proxy reset or closed it: a way for a connection to end
            } finally {
              open.decrementAndGet();
            }
          });
        }
      });
    }

    int port() {
      return server.getLocalPort();
    }

    abstract void serve(Socket s) throws IOException;

    @Override
    public void close() throws IOException {
      server.close();
    }
  }

  static final class RawOrigin extends Origin {
    final Raw behaviour;

    RawOrigin(Raw behaviour) throws IOException {
      super(behaviour.name());
      this.behaviour = behaviour;
    }

    @Override
    void serve(Socket s) throws IOException {
      ThreadLocalRandom r = ThreadLocalRandom.current();
      switch (behaviour) {
        case ECHO -> echo(s);
        case STALL -> {
          FaultTest.sleep(r.nextInt(200, 1500));
          echo(s);
        }
        case CLOSE -> { }
        case FIN_FIRST -> {
          s.shutdownOutput();
          drain(s.getInputStream(), Long.MAX_VALUE);
        }
        case RESET -> {
          drain(s.getInputStream(), r.nextInt(0, 8192));
          s.setSoLinger(true, 0);
        }
        case BURST -> {
          long size = r.nextInt(1, 512 * 1024);
          Thread writer = FaultTest.daemon("origin-burst-writer", () -> {
            try {
              OutputStream out = s.getOutputStream();
              byte[] chunk = new byte[16384];
              for (long left = size; left > 0; left -= chunk.length) {
                out.write(chunk, 0, (int) Math.min(left, chunk.length));
              }
              s.shutdownOutput();
            } catch (IOException e) {
              // the proxy went away
            }
          });
          drain(s.getInputStream(), Long.MAX_VALUE);
          try {
            writer.join(30_000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }
        default -> throw new IllegalStateException();
      }
    }

    static void echo(Socket s) throws IOException {
      InputStream in = s.getInputStream();
      OutputStream out = s.getOutputStream();
      byte[] buf = new byte[16384];
      int n;
      while ((n = in.read(buf)) > 0) {
        out.write(buf, 0, n);
      }
      s.shutdownOutput();
    }
  }

  /** Reads and discards up to {@code max} bytes or to the end. */
  static void drain(InputStream in, long max) throws IOException {
    byte[] buf = new byte[16384];
    long got = 0;
    int n;
    while (got < max && (n = in.read(buf, 0, (int) Math.min(buf.length, max - got))) > 0) {
      got += n;
    }
  }

  static final class WebOrigin extends Origin {
    final Web behaviour;

    WebOrigin(Web behaviour) throws IOException {
      super(behaviour.name());
      this.behaviour = behaviour;
    }

    @Override
    void serve(Socket s) throws IOException {
      InputStream in = new BufferedInputStream(s.getInputStream());
      OutputStream out = s.getOutputStream();
      ThreadLocalRandom r = ThreadLocalRandom.current();
      while (true) {
        String head = DataPlaneTest.readHead(in);
        if (!head.endsWith("\r\n\r\n")) {
          return; // the proxy closed the connection between requests
        }
        boolean headOnly = head.startsWith("HEAD "); // the same head, no body
        if (behaviour == Web.EARLY) { // a 413 before the body, then the body, as nginx does
          out.write(("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nX-Length: 4"
              + "\r\n\r\n" + (headOnly ? "" : "big!")).getBytes(StandardCharsets.US_ASCII));
          out.flush();
          in.readNBytes(contentLength(head));
          continue;
        }
        in.readNBytes(contentLength(head));
        switch (behaviour) {
          case RESET_BEFORE -> {
            s.setSoLinger(true, 0);
            return;
          }
          case FIN_BEFORE -> {
            s.shutdownOutput();
            drain(in, Long.MAX_VALUE);
            return;
          }
          case RESET_MID -> {
            out.write(("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nX-Length: 100000"
                + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(new byte[headOnly ? 0 : 1000]); // a HEAD's answer is whole without
            out.flush();
            FaultTest.sleep(20);
            s.setSoLinger(true, 0);
            return;
          }
          case CLOSE_AFTER -> {
            out.write(response(r.nextInt(0, 2000), "Connection: close\r\n", headOnly));
            return;
          }
          case NOT_HTTP -> {
            out.write("SSH-2.0-OpenSSH_9.2p1\r\n".getBytes(StandardCharsets.US_ASCII));
            drain(in, Long.MAX_VALUE);
            return;
          }
          case BIG -> out.write(response(BIG, "", headOnly));
          case SLOW -> {
            FaultTest.sleep(r.nextInt(100, 800));
            out.write(response(r.nextInt(0, 2000), "", headOnly));
          }
          case OK -> out.write(response(r.nextInt(0, 2000), "", headOnly));
          case CONTINUE -> {
            out.write("HTTP/1.1 100 Continue\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            out.write(response(r.nextInt(0, 2000), "", headOnly));
          }
          case CHUNKED -> {
            int length = r.nextInt(0, 20_000);
            out.write(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Length: " + length
                + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            for (int left = headOnly ? 0 : length; left > 0; ) {
              int n = Math.min(left, r.nextInt(1, 5000));
              out.write((Integer.toHexString(n) + "\r\n").getBytes(StandardCharsets.US_ASCII));
              out.write(new byte[n]);
              out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
              left -= n;
            }
            if (!headOnly) {
              out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            }
          }
          case UNTIL_CLOSE -> { // HTTP/1.0 style: the body ends where the connection does
            int length = r.nextInt(0, 20_000);
            out.write(("HTTP/1.1 200 OK\r\nX-Length: " + length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
            out.write(new byte[headOnly ? 0 : length]);
            return;
          }
          default -> throw new IllegalStateException();
        }
      }
    }

    static byte[] response(int length, String extra, boolean headOnly) {
      byte[] head = ("HTTP/1.1 200 OK\r\nContent-Length: " + length + "\r\nX-Length: " + length
          + "\r\n" + extra + "\r\n").getBytes(StandardCharsets.US_ASCII);
      byte[] all = Arrays.copyOf(head, head.length + (headOnly ? 0 : length));
      Arrays.fill(all, head.length, all.length, (byte) 'x');
      return all;
    }
  }

  /** A header's value, or null. */
  static String header(String head, String name) {
    for (String line : head.split("\r\n")) {
      if (line.toLowerCase(java.util.Locale.ROOT).startsWith(name + ":")) {
        return line.substring(name.length() + 1).strip();
      }
    }
    return null;
  }

  /**
   * Reads an answer's body, delimited by Content-Length or chunked (the proxy never leaves
   * a client's body to be delimited by the connection's end), and returns its length.
   */
  static long body(InputStream in, String head) throws IOException {
    String length = header(head, "content-length");
    if (length != null) {
      return in.readNBytes(Integer.parseInt(length)).length;
    }
    expect("chunked".equalsIgnoreCase(header(head, "transfer-encoding")),
        "an answer with neither Content-Length nor chunked: " + head);
    long total = 0;
    while (true) {
      int size = Integer.parseInt(DataPlaneTest.line(in).strip().split(";")[0], 16);
      if (size == 0) {
        while (!DataPlaneTest.line(in).strip().isEmpty()) {
          // trailers
        }
        return total;
      }
      total += in.readNBytes(size).length;
      DataPlaneTest.line(in); // the chunk's CRLF
    }
  }

  static int contentLength(String head) {
    for (String line : head.split("\r\n")) {
      if (line.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
        return Integer.parseInt(line.substring(15).strip());
      }
    }
    return 0;
  }

  /** One clean echo tunnel: its listener, client port and the bytes that went each way. */
  record Clean(String listener, int clientPort, long bytes, String what) {}

  final Map<Raw, RawOrigin> raw = new HashMap<>();
  final Map<Web, WebOrigin> web = new HashMap<>();
  final Queue<String> failures = new ConcurrentLinkedQueue<>();
  final Queue<Clean> clean = new ConcurrentLinkedQueue<>();
  TestDns dns;
  Path tlsDir; // the HTTPS listener's CA and certificate, made at its start
  javax.net.ssl.SSLContext trustingTheProxy;
  final AtomicInteger done = new AtomicInteger();
  volatile boolean drained; // the proxy stopped accepting: refusals and closed idle connections

  String yaml() {
    StringBuilder listeners = new StringBuilder(
        "  - {name: explicit, mode: http-proxy, bind: \"127.0.0.1:0\"}\n"
            + "  - {name: secure, mode: http-proxy, bind: \"127.0.0.1:0\", tls: {selfSigned: true,"
            + " dir: \"" + tlsDir + "\"}}\n");
    StringBuilder ports = new StringBuilder();
    for (RawOrigin o : raw.values()) {
      listeners.append("  - {name: tls-").append(o.behaviour.name().toLowerCase())
          .append(", mode: tls-sni, bind: \"127.0.0.1:0\", upstreamPort: ").append(o.port())
          .append("}\n");
      ports.append(ports.length() == 0 ? "" : ", ").append(o.port());
    }
    for (WebOrigin o : web.values()) {
      listeners.append("  - {name: http-").append(o.behaviour.name().toLowerCase())
          .append(", mode: http-host, bind: \"127.0.0.1:0\", upstreamPort: ").append(o.port())
          .append("}\n");
      ports.append(", ").append(o.port());
    }
    return """
        listeners:
        %s
        policy:
          rules:
            - {allow: "*.allowed.test", ports: [%s]}
          allowDestinationCidrs: [127.0.0.0/8]
        resolver:
          hosts: {www.allowed.test: 127.0.0.1, api.allowed.test: 127.0.0.1}
          servers: ["%s"]
        timeouts: {dns: 1s, connect: 2s, clientHello: 3s}
        limits: {maxConnections: 10000, maxConnectionsPerClient: %d}
        """.formatted(listeners.toString().stripTrailing(), ports, dns.address(), PER_CLIENT);
  }

  /**
   * A parent proxy (another egress-proxy, one http-proxy listener) that allows what the proxy
   * under test allows: every upstream connection of the latter is a CONNECT tunnel through it.
   */
  String parentYaml() {
    return yaml().replaceAll("(?s)listeners:.*?\npolicy:",
        "listeners:\n  - {name: parent, mode: http-proxy, bind: \"127.0.0.1:0\"}\npolicy:")
        .replace("maxConnectionsPerClient: " + PER_CLIENT, "maxConnectionsPerClient: 10000");
  }

  /**
   * On epoll and on NIO; on epoll with a drain (SIGTERM's first step) half-way: the listeners
   * close (later clients are refused), idle keep-alive connections close, answers in flight say
   * {@code Connection: close}, tunnels go on; and on epoll with every upstream connection made
   * through a parent proxy ({@code upstream.proxy}), which must end up holding nothing either.
   */
  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"epoll", "nio", "epoll, draining half-way",
      "epoll, through a parent proxy"})
  void everyConnectionEndsAndIsAccountedFor(String variant, @TempDir Path dir)
      throws Exception {
    String transport = variant.split(",")[0];
    Transport t = transport.equals("nio") ? Transport.nio("chosen by the test")
        : Transport.select();
    org.junit.jupiter.api.Assumptions.assumeTrue(t.name().equals(transport),
        "native epoll is not available here: " + t.fallbackReason());
    long seed = Long.getLong("chaos.seed", System.nanoTime());
    System.out.println("ChaosTest " + variant + ": -Dchaos.seed=" + seed);
    Map<String, List<String>> names = new HashMap<>();
    for (int i = 0; i < DNS_NAMES; i++) {
      names.put("d" + i + ".allowed.test", List.of("127.0.0.1"));
    }
    dns = new TestDns(names, false, 10); // looked up for real, each name once, 10 ms late
    tlsDir = dir.resolve("tls");
    for (Raw b : Raw.values()) {
      raw.put(b, new RawOrigin(b));
    }
    for (Web b : Web.values()) {
      web.put(b, new WebOrigin(b));
    }
    ProxyFixture parent = variant.contains("parent")
        ? new ProxyFixture(parentYaml(), dir.resolve("parent.jsonl"), t) : null;
    String yaml = parent == null ? yaml()
        : yaml() + "upstream: {proxy: \"http://127.0.0.1:" + parent.port("parent") + "\"}\n";
    try (ProxyFixture p = new ProxyFixture(yaml, dir.resolve("decisions.jsonl"), t)) {
      trustingTheProxy = HttpsProxyTest.trusting(tlsDir.resolve("ca.pem"));
      ExecutorService clients = Executors.newFixedThreadPool(CONCURRENCY);
      for (int i = 0; i < CLIENTS; i++) {
        long scenarioSeed = seed + i;
        clients.execute(() -> client(p, scenarioSeed));
      }
      clients.shutdown();
      int[] hogged = new int[2]; // held at most, refused
      Thread hog = FaultTest.daemon("hog", () -> hog(p, seed, hogged));
      if (variant.contains("draining")) {
        LoadTest.await("half the clients done", java.time.Duration.ofSeconds(150),
            () -> done.get() >= CLIENTS / 2);
        drained = true; // before: a client refused right away must know why
        p.server.stopAccepting();
      }
      assertThat(clients.awaitTermination(180, TimeUnit.SECONDS))
          .as("clients done (seed %d)", seed).isTrue();
      hog.join(120_000);
      assertThat(failures).as("what clients saw (seed %d)", seed).isEmpty();
      DataPlaneTest.await("the proxy holds no connection (seed " + seed + ")",
          () -> p.server.runtime().limits().open() == 0);
      if (!drained) {
        assertThat(hogged[1]).as("the hog's connections refused at the limit").isPositive();
        try (Socket s = hogSocket(p)) { // its count went back to nothing as its connections did
          assertThat(DataPlaneTest.connect(s, "www.allowed.test:" + raw.get(Raw.ECHO).port()))
              .as("a connection from the hog's address after it").contains(" 200 ");
        }
      }
      if (parent != null) {
        DataPlaneTest.await("the parent proxy holds no connection (seed " + seed + ")",
            () -> parent.server.runtime().limits().open() == 0);
      }
      for (Origin o : origins()) {
        DataPlaneTest.await("every connection to the origin closed by the proxy (seed " + seed
            + ")", () -> o.open.get() == 0);
      }
      List<String> log = p.closeAndReadLog();
      checkLog(log, seed);
      NettyLeakCheck.assertNoLeaks("chaos " + transport + " seed " + seed);
      int reached = origins().stream().mapToInt(o -> o.accepted.get()).sum();
      System.out.println("ChaosTest " + variant + ": " + CLIENTS + " clients, " + reached
          + " upstream connections, " + clean.size() + " clean echo tunnels, " + log.size()
          + " log lines, " + dns.queries.get() + " DNS queries; the hog held up to " + hogged[0]
          + " tunnels, refused " + hogged[1] + " times");
      if (!drained) { // with half the clients refused a few may be all there are
        assertThat(clean).as("clean echo tunnels among the scenarios").isNotEmpty();
      }
      assertThat(dns.queries.get()).as("names looked up from the name server").isPositive();
      if (parent != null) {
        assertThat(parent.closeAndReadLog()).as("the parent's log")
            .filteredOn(l -> l.contains("\"method\":\"CONNECT\"")
                && l.contains("\"decision\":\"allow\"")).hasSizeGreaterThan(CLIENTS / 4);
      }
    } finally {
      if (parent != null) {
        parent.close();
      }
      for (Origin o : origins()) {
        o.close();
      }
      dns.close();
    }
  }

  /** A connection to the proxy's explicit listener from 127.0.0.2: another client address. */
  static Socket hogSocket(ProxyFixture p) throws IOException {
    Socket s = new Socket();
    s.bind(new java.net.InetSocketAddress("127.0.0.2", 0));
    s.connect(new java.net.InetSocketAddress("127.0.0.1", p.port("explicit")), 5000);
    s.setSoTimeout(10_000);
    return s;
  }

  /**
   * A client at another address (127.0.0.2) that opens tunnels beyond its
   * {@code maxConnectionsPerClient}, holding them and letting them go by a close, a reset or a
   * FIN at random, while the others run: it gets 503s at its limit (never far below it), and
   * the others (at 127.0.0.1) are not affected. {@code result}: most held, refusals.
   */
  void hog(ProxyFixture p, long seed, int[] result) {
    RandomGenerator r = new SplittableRandom(~seed);
    List<Socket> held = new ArrayList<>();
    String connect = "CONNECT www.allowed.test:" + raw.get(Raw.ECHO).port() + " HTTP/1.1\r\n"
        + "Host: www.allowed.test\r\n\r\n";
    try {
      for (int i = 0; i < 6 * PER_CLIENT && !drained; i++) {
        Socket s = hogSocket(p);
        s.getOutputStream().write(connect.getBytes(StandardCharsets.US_ASCII));
        String status = DataPlaneTest.readHead(s.getInputStream()).split("\r\n")[0];
        if (status.contains(" 503 ")) {
          result[1]++;
          // the proxy may not have seen the last few closes yet; never refused far below it
          expect(held.size() >= PER_CLIENT / 2, "hog refused at " + held.size() + " held");
          s.close();
        } else {
          expect(status.contains(" 200 "), "hog: " + status);
          held.add(s);
          result[0] = Math.max(result[0], held.size());
        }
        while (!held.isEmpty() && (r.nextInt(4) == 0 || status.contains(" 503 "))) {
          Socket gone = held.remove(r.nextInt(held.size()));
          leave(gone, r, End.values()[r.nextInt(2, End.values().length)]);
          gone.close();
          status = "";
        }
      }
    } catch (IOException e) {
      if (!drained) {
        failures.add("hog: " + e);
      }
    } catch (AssertionError e) {
      failures.add(e.getMessage());
    } finally {
      for (Socket s : held) {
        try {
          s.close();
        } catch (IOException e) {
          // closing
        }
      }
    }
  }

  List<Origin> origins() {
    List<Origin> all = new ArrayList<>(raw.values());
    all.addAll(web.values());
    return all;
  }

  static final Pattern FIELD = Pattern.compile("\"(\\w+)\":(\"[^\"]*\"|[0-9]+)");

  static Map<String, String> fields(String line) {
    Map<String, String> f = new HashMap<>();
    Matcher m = FIELD.matcher(line);
    while (m.find()) {
      f.put(m.group(1), m.group(2).replace("\"", ""));
    }
    return f;
  }

  /**
   * Every allowed tunnel has one close line (unless its ClientHello was refused after); clean
   * echo tunnels count what went through; no HTTP client has more close lines than allowed
   * requests.
   */
  void checkLog(List<String> log, long seed) {
    // keyed by listener and client address: an ephemeral port comes back in a long run
    Map<String, Integer> tunnels = new HashMap<>();
    Map<String, Integer> allowedRequests = new HashMap<>();
    Map<String, Integer> closes = new HashMap<>();
    Map<String, List<String>> closeBytes = new HashMap<>(); // a port may serve several tunnels
    Map<String, List<String>> lines = new HashMap<>();
    for (String line : log) {
      Map<String, String> f = fields(line);
      boolean tunnel = "CONNECT".equals(f.get("method")) || "TLS".equals(f.get("method"));
      String key = f.get("listener") + " " + f.get("client") + (tunnel ? " tunnel" : " http");
      lines.computeIfAbsent(key, k -> new ArrayList<>()).add(line);
      if ("decision".equals(f.get("event")) && "allow".equals(f.get("decision"))) {
        if (tunnel) { // with the upstream it reached, or none when its client left first
          tunnels.merge(key, 1, Integer::sum);
        } else {
          allowedRequests.merge(key, 1, Integer::sum);
        }
      } else if (tunnel && "deny".equals(f.get("decision")) && f.containsKey("upstream")) {
        tunnels.merge(key, -1, Integer::sum); // refused once connected: sni-mismatch, no close
      } else if ("close".equals(f.get("event"))) {
        closes.merge(key, 1, Integer::sum);
        closeBytes.computeIfAbsent(key, k -> new ArrayList<>())
            .add(f.get("bytesUp") + " " + f.get("bytesDown"));
      }
    }
    for (Map.Entry<String, Integer> e : tunnels.entrySet()) {
      assertThat(closes.getOrDefault(e.getKey(), 0))
          .as("close lines for %s (seed %d): %s", e.getKey(), seed, lines.get(e.getKey()))
          .isEqualTo(e.getValue());
    }
    for (Map.Entry<String, Integer> e : closes.entrySet()) {
      int allowed = tunnels.getOrDefault(e.getKey(), 0)
          + allowedRequests.getOrDefault(e.getKey(), 0);
      assertThat(e.getValue())
          .as("close lines for %s (seed %d): %s", e.getKey(), seed, lines.get(e.getKey()))
          .isLessThanOrEqualTo(allowed);
    }
    for (Clean c : clean) {
      assertThat(closeBytes.get(c.listener() + " 127.0.0.1:" + c.clientPort() + " tunnel"))
          .as("bytes up and down in the close lines of %s (seed %d)", c.what(), seed)
          .contains(c.bytes() + " " + c.bytes());
    }
  }

  // ---- clients ----------------------------------------------------------------------------

  /**
   * One client's scenario. {@code strict}: nobody in it resets or closes early, so an I/O error
   * is the proxy's fault; otherwise a reset is one legitimate way for it to end. A timeout is
   * always a failure: the proxy must end or answer every connection.
   */
  static final class Scenario {
    String what;
    boolean strict;

    Scenario(String what, boolean strict) {
      this.what = what;
      this.strict = strict;
    }
  }

  void client(ProxyFixture p, long scenarioSeed) {
    RandomGenerator r = new SplittableRandom(scenarioSeed); // mixes nearby seeds well
    int kind = r.nextInt(4);
    End end = End.values()[r.nextInt(End.values().length)];
    boolean denied = r.nextInt(8) == 0;
    Scenario sc = new Scenario("scenario " + scenarioSeed + " ", end == End.CLEAN);
    try {
      if (kind < 2) {
        Raw b = Raw.values()[r.nextInt(Raw.values().length)];
        sc.what += (kind == 0 ? "CONNECT" : "tls-sni") + " to " + b + ", "
            + (denied ? "denied, " : "") + end;
        sc.strict &= b != Raw.RESET && b != Raw.CLOSE;
        if (kind == 0) {
          connectTunnel(p, r, b, denied, end, sc);
        } else {
          sniTunnel(p, r, b, denied, end, sc);
        }
      } else {
        sc.what += (kind == 2 ? "absolute-form" : "http-host") + ", " + end;
        http(p, r, kind == 2, denied, end, sc);
      }
    } catch (SocketTimeoutException e) {
      failures.add(sc.what + ": timed out waiting for the proxy (" + e.getMessage() + ")");
    } catch (java.net.ConnectException e) {
      if (!drained) {
        failures.add(sc.what + ": " + e);
      }
    } catch (IOException e) {
      if (sc.strict && !drained) {
        failures.add(sc.what + ": " + e);
      }
    } catch (RuntimeException | AssertionError e) {
      failures.add(sc.what + ": " + e);
    } finally {
      done.incrementAndGet();
    }
  }

  void connectTunnel(ProxyFixture p, RandomGenerator r, Raw b, boolean denied, End end, Scenario sc)
      throws IOException {
    boolean secure = r.nextInt(5) == 0; // over TLS to the HTTPS listener
    String listener = secure ? "secure" : "explicit";
    sc.what += secure ? ", over TLS" : "";
    try (Socket s = secure ? overTls(p.port(listener)) : DataPlaneTest.socket(p.port(listener))) {
      String host = allowedHost(r);
      String authority = denied ? "evil.test:443" : host + ":" + raw.get(b).port();
      byte[] head = ("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n")
          .getBytes(StandardCharsets.US_ASCII);
      if (end == End.RESET_IN_HEAD) {
        s.getOutputStream().write(head, 0, r.nextInt(1, head.length));
        reset(s);
        return;
      }
      s.getOutputStream().write(head);
      String status = DataPlaneTest.readHead(s.getInputStream()).split("\r\n")[0];
      if (status.isEmpty() && drained) {
        return; // a connection the drain closed before its request came (idle, to the proxy)
      }
      if (denied) {
        expect(status.contains(" 403 "), sc.what + ": " + status);
        return;
      }
      expect(status.contains(" 200 "), sc.what + ": " + status);
      if (r.nextInt(3) > 0) {
        payload(s, r, b, end, new byte[0], sc, listener);
        return;
      }
      // a TLS client in the tunnel: its SNI is checked against the CONNECT host
      boolean mismatch = r.nextInt(4) == 0;
      sc.what += mismatch ? ", ClientHello for another host" : ", ClientHello";
      byte[] hello = hello(r, !mismatch ? host
          : host.equals("api.allowed.test") ? "www.allowed.test" : "api.allowed.test");
      if (mismatch) {
        sc.strict = false; // closed, by a FIN or a reset
        s.getOutputStream().write(hello);
        drain(s.getInputStream(), Long.MAX_VALUE);
        return;
      }
      s.getOutputStream().write(hello);
      payload(s, r, b, end, hello, sc, listener);
    }
  }

  /** A TLS connection to the HTTPS listener at {@code port}, trusting its CA. */
  Socket overTls(int port) throws IOException {
    Socket raw = DataPlaneTest.socket(port);
    javax.net.ssl.SSLSocket tls = (javax.net.ssl.SSLSocket) trustingTheProxy.getSocketFactory()
        .createSocket(raw, "127.0.0.1", port, true);
    tls.startHandshake();
    return tls;
  }

  /**
   * An allowed name: from {@code resolver.hosts} (answered at once) or, a third of the time, one
   * the proxy looks up from the test's name server (an answer 10 ms late, the first time).
   */
  static String allowedHost(RandomGenerator r) {
    return switch (r.nextInt(3)) {
      case 0 -> "www.allowed.test";
      case 1 -> "api.allowed.test";
      default -> "d" + r.nextInt(DNS_NAMES) + ".allowed.test";
    };
  }

  /** A ClientHello for {@code sni} in one or two records, post-quantum size or not. */
  static byte[] hello(RandomGenerator r, String sni) {
    return ClientHellos.records(ClientHellos.handshake(sni, List.of("konnectivity", "h2"),
        r.nextBoolean() ? 1216 : 32, false), r.nextInt(1, 3));
  }

  void sniTunnel(ProxyFixture p, RandomGenerator r, Raw b, boolean denied, End end, Scenario sc)
      throws IOException {
    try (Socket s = DataPlaneTest.socket(p.port("tls-" + b.name().toLowerCase()))) {
      byte[] hello = hello(r, denied ? "evil.test" : allowedHost(r));
      OutputStream out = s.getOutputStream();
      if (end == End.RESET_IN_HEAD) {
        out.write(hello, 0, r.nextInt(1, hello.length));
        reset(s);
        return;
      }
      int cut = r.nextInt(1, hello.length);
      out.write(hello, 0, cut);
      out.flush();
      out.write(hello, cut, hello.length - cut);
      if (denied) {
        byte[] alert = s.getInputStream().readAllBytes();
        expect(alert.length == 7 && alert[0] == 0x15, sc.what + ": answered "
            + Arrays.toString(alert));
        return;
      }
      payload(s, r, b, end, hello, sc, "tls-" + b.name().toLowerCase());
    }
  }

  /**
   * The tunnel's life after its set-up; {@code sent} is what already went up (a ClientHello),
   * which an echo origin sends back first.
   */
  void payload(Socket s, RandomGenerator r, Raw b, End end, byte[] sent, Scenario sc,
      String listener) throws IOException {
    InputStream in = s.getInputStream();
    OutputStream out = s.getOutputStream();
    if (b == Raw.ECHO && end == End.CLEAN) {
      expect(Arrays.equals(in.readNBytes(sent.length), sent), sc.what + ": hello echoed");
      long total = sent.length;
      for (int i = r.nextInt(0, 6); i > 0; i--) {
        byte[] chunk = new byte[r.nextInt(1, 64 * 1024)];
        r.nextBytes(chunk);
        out.write(chunk);
        expect(Arrays.equals(in.readNBytes(chunk.length), chunk), sc.what + ": chunk echoed");
        total += chunk.length;
      }
      s.shutdownOutput();
      expect(in.read() == -1, sc.what + ": the origin's FIN after the echo");
      clean.add(new Clean(listener, s.getLocalPort(), total, sc.what));
      return;
    }
    byte[] some = new byte[r.nextInt(0, 4096)];
    out.write(some);
    if (end == End.CLEAN) {
      s.shutdownOutput();
      drain(in, Long.MAX_VALUE); // to the end, whatever the origin does
    } else {
      leave(s, r, end);
    }
  }

  /** How a client leaves without waiting for the end: a reset, a close, a FIN then a reset. */
  static void leave(Socket s, RandomGenerator r, End end) throws IOException {
    switch (end) {
      case RESET_LATE -> {
        FaultTest.sleep(r.nextInt(0, 50));
        reset(s);
      }
      case CLOSE_UNREAD -> s.close();
      case FIN_THEN_RESET -> {
        s.shutdownOutput();
        FaultTest.sleep(r.nextInt(0, 300));
        reset(s);
      }
      default -> throw new IllegalStateException(end.name());
    }
  }

  void http(ProxyFixture p, RandomGenerator r, boolean absolute, boolean denied, End end,
      Scenario sc) throws IOException {
    // http-host: the listener picks the origin; absolute-form: each request's URI does
    Web listenerBehaviour = Web.values()[r.nextInt(Web.values().length)];
    int port = absolute ? p.port("explicit")
        : p.port("http-" + listenerBehaviour.name().toLowerCase());
    try (Socket s = DataPlaneTest.socket(port)) {
      InputStream in = new BufferedInputStream(s.getInputStream());
      OutputStream out = s.getOutputStream();
      int requests = r.nextInt(1, 4);
      // an HTTP/1.0 client, now and then: one request, no chunked coding, closed after
      boolean http10 = requests == 1 && r.nextInt(5) == 0;
      sc.what += http10 ? " HTTP/1.0" : "";
      List<Web> behaviours = new ArrayList<>();
      List<String> hosts = new ArrayList<>();
      List<Boolean> heads = new ArrayList<>();
      List<Boolean> mayBeCut = new ArrayList<>();
      ByteArrayOutputStream all = new ByteArrayOutputStream();
      List<byte[]> wire = new ArrayList<>();
      for (int i = 0; i < requests; i++) {
        Web b = absolute ? Web.values()[r.nextInt(Web.values().length)] : listenerBehaviour;
        String host = denied && i == requests - 1 ? "evil.test" : allowedHost(r);
        String authority = host + ":" + web.get(b).port();
        int method = r.nextInt(6); // POST with a body, HEAD, or GET
        sc.what += (i == 0 ? " " : "+") + b + "/" + (method < 2 ? "POST" : method == 2 ? "HEAD"
            : "GET");
        // A HEAD answer (no body, so nothing says the origin closes after it) leaves the
        // connection to be reused; an origin that closes it anyway, as the next request comes,
        // gets a POST lost: the client's connection is closed (a GET would be sent again).
        mayBeCut.add(i > 0 && method < 2 && b == Web.UNTIL_CLOSE
            && behaviours.get(i - 1) == b && heads.get(i - 1) && hosts.get(i - 1).equals(host));
        sc.strict &= !mayBeCut.get(i); // closed with requests unread: a reset, not a FIN
        byte[] body = new byte[method < 2 ? r.nextInt(1, 3000) : 0];
        String target = absolute ? "http://" + authority + "/r" + i : "/r" + i;
        byte[] request = ((method < 2 ? "POST " : method == 2 ? "HEAD " : "GET ") + target
            + (http10 ? " HTTP/1.0" : " HTTP/1.1") + "\r\nHost: "
            + (absolute ? authority : host) + "\r\n"
            + (body.length > 0 ? "Content-Length: " + body.length + "\r\n" : "") + "\r\n")
            .getBytes(StandardCharsets.US_ASCII);
        request = Arrays.copyOf(request, request.length + body.length);
        behaviours.add(b);
        heads.add(method == 2);
        hosts.add(host);
        wire.add(request);
        all.writeBytes(request);
      }
      if (requests > 1 && end != End.RESET_IN_HEAD && r.nextBoolean()) {
        sc.what += " pipelined";
        out.write(all.toByteArray()); // every request at once; the answers come in order
        if (end != End.CLEAN) {
          leave(s, r, end);
          return;
        }
        for (int i = 0; i < requests; i++) {
          if (!answered(in, behaviours.get(i), hosts.get(i), heads.get(i), mayBeCut.get(i), sc)) {
            return;
          }
        }
      } else {
        for (int i = 0; i < requests; i++) {
          byte[] request = wire.get(i);
          boolean last = i == requests - 1;
          if (last && end == End.RESET_IN_HEAD) {
            out.write(request, 0, r.nextInt(1, request.length));
            reset(s);
            return;
          }
          int cut = r.nextInt(1, request.length + 1); // in one or two writes
          out.write(request, 0, cut);
          out.flush();
          out.write(request, cut, request.length - cut);
          if (last && end != End.CLEAN) {
            leave(s, r, end);
            return;
          }
          if (!answered(in, behaviours.get(i), hosts.get(i), heads.get(i), mayBeCut.get(i), sc)) {
            return;
          }
        }
      }
      s.shutdownOutput();
      expect(in.read() == -1, sc.what + ": the proxy's FIN after the client's");
    }
  }

  /**
   * Reads and checks the answer to a request to origin behaviour {@code b}; false when the
   * connection is over after it.
   */
  boolean answered(InputStream in, Web b, String host, boolean headRequest, boolean mayBeCut,
      Scenario sc) throws IOException {
    String rhead = DataPlaneTest.readHead(in);
    while (rhead.startsWith("HTTP/1.1 1")) {
      rhead = DataPlaneTest.readHead(in); // 100 Continue, passed on; the answer follows
    }
    if (rhead.isEmpty() && (drained || mayBeCut)) {
      // an idle keep-alive connection the drain closed as the request came; or a POST on a
      // reused connection its origin closed
      return false;
    }
    String status = rhead.isEmpty() ? "(closed)" : rhead.split("\r\n")[0];
    if (status.contains(" 502 ") && b != Web.RESET_BEFORE && b != Web.FIN_BEFORE
        && b != Web.NOT_HTTP && !headRequest) {
      status += " " + new String(in.readNBytes(contentLength(rhead)), StandardCharsets.UTF_8);
    }
    if (host.equals("evil.test")) {
      expect(status.contains(" 403 "), sc.what + ": " + status);
      return false;
    }
    switch (b) {
      case OK, SLOW, BIG, CLOSE_AFTER, CHUNKED, UNTIL_CLOSE, CONTINUE, EARLY -> {
        expect(status.contains(b == Web.EARLY ? " 413 " : " 200 "),
            sc.what + ": " + b + " answered " + status);
        long length = Long.parseLong(header(rhead, "x-length"));
        if (!headRequest) { // a HEAD answer's length headers describe a body it does not have
          // neither length nor chunked: only for an HTTP/1.0 client, the body ended by the
          // close (for any other the read would wait for its timeout: a failure)
          long got = header(rhead, "content-length") == null
              && header(rhead, "transfer-encoding") == null
              ? in.readAllBytes().length : body(in, rhead);
          expect(got == length, sc.what + ": " + b + " body of " + length + ", got " + got);
        }
      }
      case RESET_BEFORE, FIN_BEFORE, NOT_HTTP -> {
        expect(status.contains(" 502 "), sc.what + ": " + b + " answered " + status);
        int len = headRequest ? 0 : contentLength(rhead);
        expect(in.readNBytes(len).length == len, sc.what + ": " + b + " 502's body");
      }
      case RESET_MID -> {
        sc.strict = false;
        if (headRequest) {
          return true; // the answer is whole; the origin's reset comes after it
        }
        // the head and part of the body, then the proxy must end the connection
        drain(in, 200_000);
        return false;
      }
      default -> throw new IllegalStateException(b.name());
    }
    // Connection is hop-by-hop: the proxy may keep the client's connection open or not
    if (rhead.toLowerCase(java.util.Locale.ROOT).contains("\r\nconnection: close")) {
      expect(in.read() == -1, sc.what + ": closed after Connection: close");
      return false;
    }
    return true;
  }

  static void reset(Socket s) throws IOException {
    s.setSoLinger(true, 0);
    s.close();
  }

  static void expect(boolean ok, String what) {
    if (!ok) {
      throw new AssertionError(what);
    }
  }
}
