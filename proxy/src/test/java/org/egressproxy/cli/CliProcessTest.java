package org.egressproxy.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CLI as a separate JVM, as operators run it: signals, exit statuses, the working directory
 * (relative catalogDirs), and the repository's config/proxy.yaml.
 */
public class CliProcessTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));

  /** A port free right now on 127.0.0.1, for a process that binds it itself. */
  public static int freePort() throws IOException {
    return org.egressproxy.it.ProxyFixture.freePort();
  }

  public static ProcessBuilder java(Path cwd, String... args) {
    return javaMain(cwd, Main.class.getName(), args);
  }

  /** This JVM's java and class path running {@code mainClass}, output and errors merged. */
  public static ProcessBuilder javaMain(Path cwd, String mainClass, String... args) {
    String javaBin = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> cmd = new java.util.ArrayList<>(List.of(javaBin, "-cp",
        System.getProperty("java.class.path"), mainClass));
    cmd.addAll(List.of(args));
    return new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true);
  }

  /** Lines of a process's output, read on a thread so the test can wait with a deadline. */
  public static BlockingQueue<String> lines(Process p) {
    return lines(p, null);
  }

  /**
   * {@link #lines(Process)}, and each line also added to {@code all} (if not null), which the
   * waits do not take lines from: everything the process printed, once it has exited.
   */
  public static BlockingQueue<String> lines(Process p, List<String> all) {
    return lines(p.getInputStream(), all);
  }

  /** The same for its standard error (started with {@code redirectErrorStream(false)}). */
  public static BlockingQueue<String> errors(Process p, List<String> all) {
    return lines(p.getErrorStream(), all);
  }

  private static BlockingQueue<String> lines(java.io.InputStream in, List<String> all) {
    BlockingQueue<String> q = new LinkedBlockingQueue<>();
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(
          new InputStreamReader(in, StandardCharsets.UTF_8))) {
        String l;
        while ((l = r.readLine()) != null) {
          if (all != null) {
            all.add(l);
          }
          q.add(l);
        }
      } catch (IOException e) {
        q.add("<read error " + e + ">");
      }
    });
    t.setDaemon(true);
    t.start();
    return q;
  }

  public static String await(BlockingQueue<String> q, String fragment)
      throws InterruptedException {
    Instant deadline = Instant.now().plus(Duration.ofSeconds(20));
    StringBuilder seen = new StringBuilder();
    while (Instant.now().isBefore(deadline)) {
      String l = q.poll(200, TimeUnit.MILLISECONDS);
      if (l != null) {
        seen.append(l).append('\n');
        if (l.contains(fragment)) {
          return l;
        }
      }
    }
    throw new AssertionError("no line containing '" + fragment + "' within 20 s; saw:\n" + seen);
  }

  static void signal(Process p, String sig) throws Exception {
    Process kill = new ProcessBuilder("kill", "-" + sig, Long.toString(p.pid())).start();
    assertThat(kill.waitFor(10, TimeUnit.SECONDS)).isTrue();
    assertThat(kill.exitValue()).isZero();
  }

  @Test
  void runReloadsOnSighupKeepsTheOldPolicyOnErrorAndExitsZeroOnSigterm(@TempDir Path dir)
      throws Exception {
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n");
    Process p = java(dir, "run", "--config", config.toString()).start();
    try {
      BlockingQueue<String> out = lines(p);
      await(out, "ready.");
      Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n    - allow: b.test\n");
      signal(p, "HUP");
      assertThat(await(out, "reloaded")).contains("2 rules");
      Files.writeString(config, "policy:\n  rules:\n    - allow: \"*bad.test\"\n");
      signal(p, "HUP");
      assertThat(await(out, "proxy.yaml:3:")).contains("'*' must be a whole label");
      assertThat(await(out, "reload failed")).contains("still serving");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).as("exits after SIGTERM").isTrue();
      assertThat(p.exitValue()).isZero();
    } finally {
      p.destroyForcibly();
    }
  }

  @Test
  void runServesTheAdminEndpoint(@TempDir Path dir) throws Exception {
    int port = freePort();
    int proxyPort = freePort();
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "admin:\n  bind: 127.0.0.1:" + port + "\n"
        + "listeners:\n  - {name: explicit, mode: http-proxy, bind: \"127.0.0.1:" + proxyPort
        + "\"}\npolicy:\n  rules:\n    - allow: a.test\n");
    Process p = java(dir, "run", "--config", config.toString()).start();
    try {
      BlockingQueue<String> out = lines(p);
      await(out, "ready.");
      java.net.http.HttpClient client = java.net.http.HttpClient.newHttpClient();
      java.util.function.Function<String, java.net.http.HttpResponse<String>> get = path -> {
        try {
          return client.send(java.net.http.HttpRequest.newBuilder(
              java.net.URI.create("http://127.0.0.1:" + port + path)).build(),
              java.net.http.HttpResponse.BodyHandlers.ofString());
        } catch (Exception e) {
          throw new AssertionError(e);
        }
      };
      assertThat(get.apply("/healthz").statusCode()).isEqualTo(200);
      assertThat(get.apply("/readyz").statusCode()).isEqualTo(200);
      var metrics = get.apply("/metrics");
      assertThat(metrics.statusCode()).isEqualTo(200);
      assertThat(metrics.body()).contains("cache_gets_total{cache=\"decisions\"")
          .contains("egress_upstream_connect_seconds").contains("jvm_memory_used_bytes")
          .contains("egress_decision_log_dropped_total");
      assertThat(get.apply("/check?host=a.test&port=443").body())
          .isEqualTo("ALLOW a.test:443 tls reason=rule rule=a.test catalog=local\n");
      assertThat(get.apply("/check?host=b.test").body()).startsWith("DENY b.test:443 tls"
          + " reason=no-match");
      assertThat(get.apply("/nope").statusCode()).isEqualTo(404);

      // A denied destination shows on the status page; a broken reload in /policy and on it.
      for (int i = 0; i < 3; i++) {
        try (java.net.Socket s = new java.net.Socket("127.0.0.1", proxyPort)) {
          s.getOutputStream().write("CONNECT denied.test:443 HTTP/1.1\r\n\r\n".getBytes());
          s.getInputStream().readAllBytes();
        }
      }
      Files.writeString(config, "admin:\n  bind: 127.0.0.1:" + port + "\n"
          + "policy:\n  rules:\n    - allow: \"*bad.test\"\n");
      signal(p, "HUP");
      await(out, "reload failed");
      String page = get.apply("/").body();
      assertThat(page).contains("Policy version").contains("<td>denied.test:443</td><td>3</td>")
          .contains("<td>explicit</td>").contains("failed; the previous policy is still serving")
          .contains("proxy.yaml:5: ");
      String policy = get.apply("/policy").body();
      assertThat(policy).startsWith("{\"version\":").contains("\"mode\":\"enforce\"")
          .contains("\"localRules\":[{\"action\":\"allow\",\"rule\":\"a.test\"")
          .contains("\"result\":\"error\"").contains("proxy.yaml:5:");
      assertThat(get.apply("/metrics").body())
          .contains("egress_config_reloads_total{result=\"error\"} 1.0");
      // A reload that works but cannot apply everything: a warning, not an error.
      Files.writeString(config, "admin:\n  bind: 127.0.0.1:" + port + "\n"
          + "policy:\n  rules:\n    - allow: a.test\n    - allow: c.test\n");
      signal(p, "HUP");
      await(out, "reloaded");
      assertThat(get.apply("/policy").body()).contains("\"result\":\"ok\"")
          .contains("\"errors\":[]").contains("\"warnings\":[\"")
          .contains("listeners changed; a reload applies the policy only");
      assertThat(get.apply("/").body()).contains("Warnings:")
          .contains("listeners changed; a reload applies the policy only");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).isZero();
    } finally {
      p.destroyForcibly();
    }
  }

  /**
   * With {@code decisionLog.path: "-"} standard output is the decision log's JSON Lines and
   * nothing else (a container's log collector parses it); the proxy's own lines - listeners,
   * ready, stopped - are on standard error.
   */
  @Test
  void aDecisionLogOnStandardOutputIsAllThereIs(@TempDir Path dir) throws Exception {
    int proxyPort = freePort();
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "listeners:\n  - {name: explicit, mode: http-proxy, bind: \""
        + "127.0.0.1:" + proxyPort + "\"}\npolicy:\n  rules:\n    - allow: a.test\n"
        + "decisionLog: {path: \"-\"}\n");
    Process p = java(dir, "run", "--config", config.toString()).redirectErrorStream(false)
        .start();
    try {
      List<String> stdout = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
      BlockingQueue<String> decisions = lines(p, stdout);
      BlockingQueue<String> err = errors(p, null);
      await(err, "ready.");
      try (java.net.Socket s = new java.net.Socket("127.0.0.1", proxyPort)) {
        s.getOutputStream().write("CONNECT denied.test:443 HTTP/1.1\r\n\r\n".getBytes());
        s.getInputStream().readAllBytes();
      }
      await(decisions, "\"decision\":\"deny\"");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).isZero();
      await(err, "stopped");
      assertThat(stdout).isNotEmpty().allSatisfy(l -> assertThat(l).startsWith("{\"")
          .endsWith("}"));
    } finally {
      p.destroyForcibly();
    }
  }

  /**
   * A decision log that cannot be opened (its directory is a file): the proxy runs, says why in
   * one line on standard error - not Log4j's stack trace on standard output - and counts what
   * it cannot write.
   */
  @Test
  void aDecisionLogThatCannotBeOpenedIsOneLineOnStandardError(@TempDir Path dir)
      throws Exception {
    Path notADir = Files.writeString(dir.resolve("plain-file"), "x");
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "listeners:\n  - {name: explicit, mode: http-proxy, bind: \""
        + "127.0.0.1:0\"}\npolicy:\n  rules:\n    - allow: a.test\n"
        + "decisionLog: {path: \"" + notADir.resolve("decisions.jsonl") + "\"}\n");
    Process p = java(dir, "run", "--config", config.toString()).redirectErrorStream(false)
        .start();
    try {
      List<String> stdout = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
      lines(p, stdout);
      List<String> allErr = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
      BlockingQueue<String> err = errors(p, allErr);
      assertThat(await(err, "cannot open the decision log")).contains("plain-file")
          .contains("egress_decision_log_dropped_total").contains("(");
      await(err, "ready.");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
      await(err, "stopped");
      assertThat(stdout).as("standard output").isEmpty();
      assertThat(allErr).as("no stack trace").noneMatch(l -> l.startsWith("\tat "));
    } finally {
      p.destroyForcibly();
    }
  }

  /**
   * The decision log is UTF-8 whatever the locale (here LANG=C, where Java 17's default charset
   * is ASCII and wrote '?'), and a C1 control in a name (U+0085, a line break to some readers)
   * is escaped: one line per event, the name's bytes recoverable.
   */
  @Test
  void theDecisionLogIsUtf8WhateverTheLocale(@TempDir Path dir) throws Exception {
    int port = freePort();
    Path config = dir.resolve("proxy.yaml");
    Path log = dir.resolve("decisions.jsonl");
    Files.writeString(config, "listeners:\n  - {name: tls, mode: tls-sni, bind: \"127.0.0.1:"
        + port + "\", upstreamPort: 9}\npolicy:\n  rules:\n    - allow: a.test\n"
        + "decisionLog: {path: \"" + log + "\"}\n");
    ProcessBuilder pb = java(dir, "run", "--config", config.toString());
    pb.environment().remove("LC_ALL");
    pb.environment().put("LANG", "C");
    Process p = pb.start();
    try {
      await(lines(p), "ready.");
      byte[] name = {'c', 'a', 'f', (byte) 0xc3, (byte) 0xa9, (byte) 0x85, '.', 't', 'e', 's',
          't'};
      try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
        s.setSoTimeout(10_000);
        s.getOutputStream().write(org.egressproxy.it.ClientHellos.records(
            org.egressproxy.it.ClientHellos.handshake(List.of(name), List.of("h2"), 0, false),
            1));
        s.getInputStream().readAllBytes(); // the alert, then the close
      }
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      assertThat(lines).singleElement().asString()
          .contains("\"sni\":\"caf\u00c3\u00a9\\u0085.test\"");
    } finally {
      p.destroyForcibly();
    }
  }

  @Test
  void aChangedConfigFileIsReloadedWithoutASignal(@TempDir Path dir) throws Exception {
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n");
    Process p = java(dir, "run", "--config", config.toString()).start();
    try {
      BlockingQueue<String> out = lines(p);
      await(out, "ready.");
      Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n    - allow: b.test\n"
          + "    - allow: c.test\n");
      assertThat(await(out, "reloaded (file changed)")).contains("3 rules");
      // a key the reload cannot apply is named rather than passed over
      Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n"
          + "timeouts: {idle: 5m}\n");
      assertThat(await(out, "changed; a reload applies the policy only"))
          .contains("timeouts changed");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
    } finally {
      p.destroyForcibly();
    }
  }

  /**
   * The decision log in the configuration's directory: it is written all the time, and those
   * writes used to keep the watcher waiting for a quiet half second that never came, so a
   * change of the configuration was never reloaded.
   */
  @Test
  void aFileWrittenAllTheTimeBesideTheConfigDoesNotHoldBackItsReload(@TempDir Path dir)
      throws Exception {
    Path config = dir.resolve("proxy.yaml");
    Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n");
    Process p = java(dir, "run", "--config", config.toString()).start();
    AtomicBoolean writing = new AtomicBoolean(true);
    Thread noise = new Thread(() -> {
      Path log = dir.resolve("decisions.jsonl");
      for (int i = 0; i < 1_000 && writing.get(); i++) { // at most 50 s
        try {
          Files.writeString(log, "{\"event\":\"decision\"}\n", StandardOpenOption.CREATE,
              StandardOpenOption.APPEND);
          Thread.sleep(50);
        } catch (IOException | InterruptedException e) {
          return;
        }
      }
    });
    try {
      BlockingQueue<String> out = lines(p);
      await(out, "ready.");
      noise.start();
      Files.writeString(config, "policy:\n  rules:\n    - allow: a.test\n    - allow: b.test\n");
      assertThat(await(out, "reloaded (file changed)")).contains("2 rules");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
    } finally {
      writing.set(false);
      noise.join(5_000);
      p.destroyForcibly();
    }
  }

  /**
   * A Kubernetes ConfigMap mounted as a directory: {@code proxy.yaml} and the catalog are links
   * through {@code ..data}, and an update swaps that link atomically - no event names the files
   * themselves. Both swaps reload.
   */
  @Test
  void aConfigMapStyleLinkSwapIsReloaded(@TempDir Path dir) throws Exception {
    Path mount = Files.createDirectories(dir.resolve("config"));
    Path catalogs = Files.createDirectories(dir.resolve("catalogs"));
    String config = "policy:\n  catalogs: [mine]\n  catalogDirs: [\"" + catalogs + "\"]\n"
        + "  rules:\n    - allow: a.test\n";
    atomicWrite(mount, "v1", "proxy.yaml", config);
    atomicWrite(catalogs, "v1", "mine.yaml", catalog("one.test"));
    Process p = java(dir, "run", "--config", mount.resolve("proxy.yaml").toString()).start();
    try {
      BlockingQueue<String> out = lines(p);
      await(out, "ready.");
      atomicWrite(mount, "v2", "proxy.yaml", config + "    - allow: b.test\n");
      assertThat(await(out, "reloaded (file changed)")).contains("3 rules");
      atomicWrite(catalogs, "v2", "mine.yaml", catalog("one.test", "two.test", "three.test"));
      assertThat(await(out, "reloaded (file changed)")).contains("5 rules");
      signal(p, "TERM");
      assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
    } finally {
      p.destroyForcibly();
    }
  }

  static String catalog(String... names) {
    StringBuilder sb = new StringBuilder(
        "name: mine\ndescription: test\nsource: test\nrules:\n");
    for (String n : names) {
      sb.append("  - {host: ").append(n).append(", ports: [443], protocol: tls, purpose: t}\n");
    }
    return sb.toString();
  }

  /**
   * What the kubelet's atomic writer does: the new files in {@code ..VERSION}, a {@code ..data}
   * link swapped to it with a rename, the visible name a link through {@code ..data}.
   */
  static void atomicWrite(Path mount, String version, String name, String text)
      throws IOException {
    Path versionDir = Files.createDirectories(mount.resolve(".." + version));
    Files.writeString(versionDir.resolve(name), text);
    Path tmp = mount.resolve("..data_tmp");
    Files.deleteIfExists(tmp);
    Files.createSymbolicLink(tmp, Path.of(".." + version));
    Files.move(tmp, mount.resolve("..data"), java.nio.file.StandardCopyOption.ATOMIC_MOVE,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    Path visible = mount.resolve(name);
    if (!Files.isSymbolicLink(visible)) {
      Files.createSymbolicLink(visible, Path.of("..data", name));
    }
  }

  @Test
  void sigtermDrainsOpenTunnelsWhileRefusingNewConnections(@TempDir Path dir) throws Exception {
    int proxyPort = freePort();
    int adminPort = freePort();
    try (java.net.ServerSocket origin = new java.net.ServerSocket(0, 5,
        java.net.InetAddress.getLoopbackAddress())) {
      Thread echo = new Thread(() -> {
        try (java.net.Socket s = origin.accept()) {
          s.getInputStream().transferTo(s.getOutputStream());
        } catch (IOException e) {
          // the test ends the connection
        }
      });
      echo.setDaemon(true);
      echo.start();
      Path config = dir.resolve("proxy.yaml");
      Files.writeString(config, "listeners:\n  - {name: explicit, mode: http-proxy, bind: "
          + "\"127.0.0.1:" + proxyPort + "\"}\nadmin: {bind: \"127.0.0.1:" + adminPort + "\"}\n"
          + "policy:\n  rules:\n    - allow: echo.test\n      ports: [" + origin.getLocalPort()
          + "]\n  allowDestinationCidrs: [127.0.0.0/8]\n"
          + "resolver: {hosts: {echo.test: 127.0.0.1}}\nshutdown: {drain: 20s}\n");
      Process p = java(dir, "run", "--config", config.toString()).start();
      try (java.net.Socket tunnel = new java.net.Socket()) {
        BlockingQueue<String> out = lines(p);
        await(out, "ready.");
        tunnel.connect(new java.net.InetSocketAddress("127.0.0.1", proxyPort), 5000);
        tunnel.setSoTimeout(10_000);
        tunnel.getOutputStream().write(("CONNECT echo.test:" + origin.getLocalPort()
            + " HTTP/1.1\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        byte[] head = new byte[39];
        assertThat(tunnel.getInputStream().readNBytes(head, 0, 39)).isEqualTo(39);
        assertThat(new String(head, StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 200");

        signal(p, "TERM");
        await(out, "draining 1 connection");
        // Not ready any more, refusing new connections, and the open tunnel still works.
        var readyz = java.net.http.HttpClient.newHttpClient().send(
            java.net.http.HttpRequest.newBuilder(java.net.URI.create(
                "http://127.0.0.1:" + adminPort + "/readyz")).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(readyz.statusCode()).isEqualTo(503);
        assertThat(org.assertj.core.api.Assertions.catchThrowable(() -> {
          try (java.net.Socket s = new java.net.Socket("127.0.0.1", proxyPort)) {
            s.setSoTimeout(2000);
          }
        })).isInstanceOf(java.net.ConnectException.class);
        tunnel.getOutputStream().write("still here\n".getBytes(StandardCharsets.US_ASCII));
        assertThat(new String(tunnel.getInputStream().readNBytes(11), StandardCharsets.US_ASCII))
            .isEqualTo("still here\n");
        tunnel.close();
        await(out, "stopped");
        assertThat(p.waitFor(10, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).isZero();
      } finally {
        p.destroyForcibly();
      }
    }
  }

  @Test
  void runWithABrokenConfigExitsTwo(@TempDir Path dir) throws Exception {
    Path config = dir.resolve("bad.yaml");
    Files.writeString(config, "listeners: 3\n");
    Process p = java(dir, "--config", config.toString()).start();
    BlockingQueue<String> out = lines(p);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).isEqualTo(2);
    assertThat(await(out, "bad.yaml:1:")).contains("listeners must be a list");
  }

  /** Runs a command with {@code stdin}; returns its output (stdout and stderr) and status. */
  static String[] runWithInput(Path dir, String stdin, String... args) throws Exception {
    Process p = java(dir, args).start();
    p.getOutputStream().write(stdin.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    p.getOutputStream().close();
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    return new String[] {new String(p.getInputStream().readAllBytes(),
        java.nio.charset.StandardCharsets.UTF_8).strip(), Integer.toString(p.exitValue())};
  }

  @Test
  void hashMakesWhatSourcesStoreAndTheProxyAcceptsIt(@TempDir Path dir) throws Exception {
    String[] bcrypt = runWithInput(dir, "pa ss\n", "hash", "--cost", "4");
    assertThat(bcrypt[1]).isEqualTo("0");
    assertThat(bcrypt[0]).matches("\\$2y\\$04\\$[./A-Za-z0-9]{53}");
    assertThat(org.egressproxy.auth.PasswordHash.parse(bcrypt[0]).verify("pa ss")).isTrue();
    String[] argon = runWithInput(dir, "pa ss", "hash", "--argon2");
    assertThat(argon[0]).startsWith("$argon2id$v=19$");
    assertThat(org.egressproxy.auth.PasswordHash.parse(argon[0]).verify("pa ss")).isTrue();
    String[] token = runWithInput(dir, "tok", "hash", "--token");
    assertThat(token[0]).isEqualTo(org.egressproxy.auth.PasswordHash.sha256Hex("tok"))
        .hasSize(64);
    String[] empty = runWithInput(dir, "", "hash");
    assertThat(empty[1]).isEqualTo("2");
    assertThat(empty[0]).contains("on standard input");
    // What hash printed is a valid configuration value.
    Path config = dir.resolve("p.yaml");
    Files.writeString(config, """
        policy:
          sources:
            - name: ci
              users: [{name: ci, passwordHash: '%s'}]
              tokens: [{name: t, sha256: '%s'}]
              rules: [{allow: ci.example}]
        """.formatted(argon[0], token[0]));
    String[] check = runWithInput(dir, "", "check", "--config", config.toString(), "--source",
        "ci", "ci.example");
    assertThat(check[0]).isEqualTo("ALLOW ci.example:443 tls reason=rule rule=ci.example"
        + " catalog=local");
    String[] top = runWithInput(dir, "", "check", "--config", config.toString(), "ci.example");
    assertThat(top[1]).isEqualTo("1");
    String[] unknown = runWithInput(dir, "", "check", "--config", config.toString(), "--source",
        "cj", "ci.example");
    assertThat(unknown[1]).isEqualTo("2");
    assertThat(unknown[0]).contains("no source 'cj' in policy.sources; known: ci");
  }

  @Test
  void aListenerThatCannotBindIsAStartUpErrorWithExitTwo(@TempDir Path dir) throws Exception {
    try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1,
        java.net.InetAddress.getLoopbackAddress())) {
      Path config = dir.resolve("proxy.yaml");
      Files.writeString(config, "listeners:\n  - name: explicit\n    mode: http-proxy\n"
          + "    bind: 127.0.0.1:" + taken.getLocalPort() + "\n");
      Process p = java(dir, "run", "--config", config.toString()).start();
      BlockingQueue<String> out = lines(p);
      assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).isEqualTo(2);
      assertThat(await(out, "cannot bind")).contains("listener 'explicit' (http-proxy) to 127.0.0.1:"
          + taken.getLocalPort());
    }
  }

  @Test
  void theRepositoryApplianceConfigValidatesFromTheRepositoryRoot() throws Exception {
    assertThat(REPO.resolve("config/proxy.yaml")).exists();
    Process p = java(REPO, "validate", "--config", "config" + File.separator + "proxy.yaml")
        .start();
    BlockingQueue<String> out = lines(p);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    String ok = await(out, "OK config");
    assertThat(p.exitValue()).as(ok).isZero();
  }
}
