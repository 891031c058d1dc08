package org.egressproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The policy side (config, catalog, policy, match) is pure: it decides without Netty, so it can
 * be read, tested and benchmarked on its own, and the CLI's offline check is the data plane's
 * decision. Checked on the sources (Surefire runs in the module directory).
 */
class ArchitectureTest {
  private static final Path MAIN = Path.of("src/main/java/org/egressproxy");

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"config", "catalog", "policy", "match"})
  void policySideDoesNotImportNettyOrTheCli(String pkg) throws IOException {
    Path dir = MAIN.resolve(pkg);
    assertThat(dir).isDirectory();
    List<Path> sources;
    try (Stream<Path> s = Files.walk(dir)) {
      sources = s.filter(p -> p.toString().endsWith(".java")).toList();
    }
    assertThat(sources).isNotEmpty();
    for (Path source : sources) {
      assertThat(Files.readAllLines(source))
          .as(source.toString())
          .noneMatch(l -> l.startsWith("import io.netty."))
          .noneMatch(l -> l.startsWith("import org.egressproxy.cli."));
    }
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"match"})
  void matchDependsOnNothingElseOfOurs(String pkg) throws IOException {
    try (Stream<Path> s = Files.walk(MAIN.resolve(pkg))) {
      for (Path source : s.filter(p -> p.toString().endsWith(".java")).toList()) {
        assertThat(Files.readAllLines(source)).as(source.toString())
            .noneMatch(l -> l.startsWith("import org.egressproxy.")
                && !l.startsWith("import org.egressproxy.match."));
      }
    }
  }
}
