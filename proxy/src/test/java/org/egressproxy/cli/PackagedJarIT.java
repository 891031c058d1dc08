package org.egressproxy.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.abort;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shaded jar as operators run it ({@code java -jar egress-proxy.jar}, as the Dockerfile, the
 * systemd unit and the README do), after {@code package}: on this build's JDK and on every other
 * JDK 17 or later installed under {@code /usr/lib/jvm} (or named in {@code -Degress.it.javas},
 * comma-separated java executables). Each starts on the native epoll transport, relays a CONNECT
 * tunnel byte for byte, writes its decision log, stops with exit 0 on SIGTERM - and prints no JVM
 * warning (on JDK 24+, Netty's native library load warns unless the manifest grants native
 * access; a later JDK blocks it and the proxy would fall back to NIO).
 */
class PackagedJarIT {
  private static final Path JAR = Path.of(System.getProperty("egress.jar",
      "target/egress-proxy.jar"));
  private static final Pattern RELEASE_VERSION =
      Pattern.compile("(?m)^JAVA_VERSION=\"(\\d+)[^\"]*\"");

  @Test
  void theManifestNamesTheMainClassAndGrantsNativeAccess() throws IOException {
    assertThat(JAR).as("the shaded jar (run after package)").isRegularFile();
    try (JarFile jar = new JarFile(JAR.toFile())) {
      var attributes = jar.getManifest().getMainAttributes();
      assertThat(attributes.getValue("Main-Class")).isEqualTo(Main.class.getName());
      assertThat(attributes.getValue("Enable-Native-Access")).isEqualTo("ALL-UNNAMED");
    }
  }

  @TestFactory
  Stream<DynamicTest> theJarServesOnEveryInstalledJdkWithoutAWarning(@TempDir Path dir) {
    Map<Path, Integer> jdks = installedJdks();
    List<DynamicTest> tests = new ArrayList<>();
    jdks.forEach((java, major) -> tests.add(DynamicTest.dynamicTest(
        "JDK " + major + " (" + java + ")", () -> servesOn(java, major,
            Files.createTempDirectory(dir, "jdk" + major)))));
    if (jdks.values().stream().noneMatch(m -> m >= 24)) {
      tests.add(DynamicTest.dynamicTest("JDK 24 or later", () -> abort("no JDK 24 or later "
          + "installed (looked at this build's JDK, /usr/lib/jvm and -Degress.it.javas): the "
          + "native-access warning those JDKs print is not checked here")));
    }
    return tests.stream();
  }

  private static void servesOn(Path java, int major, Path dir) throws Exception {
    Path log = dir.resolve("decisions.jsonl");
    try (ServerSocket origin = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      origin.setSoTimeout(30_000);
      Thread echo = new Thread(() -> {
        try (Socket s = origin.accept()) {
          s.getInputStream().transferTo(s.getOutputStream());
        } catch (IOException e) {
          // the test ends the connection, or failed before connecting
        }
      });
      echo.setDaemon(true);
      echo.start();
      int proxyPort = CliProcessTest.freePort();
      int adminPort = CliProcessTest.freePort();
      Path config = dir.resolve("proxy.yaml");
      Files.writeString(config, "listeners:\n  - {name: explicit, mode: http-proxy, bind: "
          + "\"127.0.0.1:" + proxyPort + "\"}\nadmin: {bind: \"127.0.0.1:" + adminPort + "\"}\n"
          + "policy:\n  rules:\n    - allow: echo.test\n      ports: [" + origin.getLocalPort()
          + "]\n  allowDestinationCidrs: [127.0.0.0/8]\n"
          + "resolver: {hosts: {echo.test: 127.0.0.1}}\n"
          + "decisionLog: {path: \"" + log + "\"}\n");
      Process p = new ProcessBuilder(java.toString(), "-jar", JAR.toAbsolutePath().toString(),
          "run", "--config", config.toString())
          .directory(dir.toFile()).redirectErrorStream(true).start();
      // every line it prints, standard output and errors, for the checks after it exited
      List<String> seen = Collections.synchronizedList(new ArrayList<>());
      try {
        BlockingQueue<String> out = CliProcessTest.lines(p, seen);
        String listener = CliProcessTest.await(out, "listener 'explicit'");
        CliProcessTest.await(out, "ready.");
        if (io.netty.channel.epoll.Epoll.isAvailable()) { // here, so in the jar too
          assertThat(listener).as("JDK %d: the listener's transport", major).endsWith("(epoll)");
        }
        try (Socket tunnel = new Socket()) {
          tunnel.connect(new InetSocketAddress("127.0.0.1", proxyPort), 5000);
          tunnel.setSoTimeout(10_000);
          tunnel.getOutputStream().write(("CONNECT echo.test:" + origin.getLocalPort()
              + " HTTP/1.1\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
          String head = new String(tunnel.getInputStream().readNBytes(39),
              StandardCharsets.US_ASCII);
          assertThat(head).as("JDK %d: the CONNECT's answer", major).startsWith("HTTP/1.1 200");
          tunnel.getOutputStream().write("through the jar\n".getBytes(StandardCharsets.US_ASCII));
          assertThat(new String(tunnel.getInputStream().readNBytes(16),
              StandardCharsets.US_ASCII)).isEqualTo("through the jar\n");
        }
        CliProcessTest.signal(p, "TERM");
        // its last line: every line before it is in seen once this is read
        CliProcessTest.await(out, "egress-proxy: stopped");
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("JDK %d: stopped after SIGTERM", major)
            .isTrue();
        assertThat(p.exitValue()).as("JDK %d: exit status", major).isZero();
      } finally {
        p.destroyForcibly();
      }
      assertThat(seen).as("JDK %d: no JVM warning in the output", major)
          .noneMatch(l -> l.startsWith("WARNING:") || l.contains("restricted method"));
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      assertThat(lines).as("JDK %d: the decision log", major)
          .anyMatch(l -> l.contains("\"event\":\"decision\"") && l.contains("echo.test"))
          .anyMatch(l -> l.contains("\"event\":\"close\"") && l.contains("\"bytesUp\":16"));
    }
  }

  /** This build's JDK first, then the others found, by the real path of their java. */
  static Map<Path, Integer> installedJdks() {
    Map<Path, Integer> jdks = new LinkedHashMap<>();
    add(jdks, Path.of(System.getProperty("java.home")));
    for (String j : System.getProperty("egress.it.javas", "").split(",")) {
      if (!j.isBlank()) {
        add(jdks, Path.of(j.trim()).toAbsolutePath().getParent().getParent());
      }
    }
    Path lib = Path.of("/usr/lib/jvm");
    if (Files.isDirectory(lib)) {
      try (Stream<Path> homes = Files.list(lib)) {
        homes.sorted().forEach(home -> add(jdks, home));
      } catch (IOException e) {
        throw new AssertionError("cannot list " + lib, e);
      }
    }
    return jdks;
  }

  private static void add(Map<Path, Integer> jdks, Path home) {
    Path java = home.resolve("bin/java");
    Path release = home.resolve("release");
    if (!Files.isExecutable(java) || !Files.isReadable(release)) {
      return; // not a JDK or JRE home (e.g. a link to one, or a bare directory)
    }
    try {
      Matcher m = RELEASE_VERSION.matcher(Files.readString(release, StandardCharsets.UTF_8));
      int major = m.find() ? Integer.parseInt(m.group(1)) : 0;
      if (major >= 17) {
        jdks.putIfAbsent(java.toRealPath(), major);
      }
    } catch (IOException e) {
      throw new AssertionError("cannot read " + release, e);
    }
  }
}
