package org.egressproxy.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.abort;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The Dockerfile built and the image run: {@code deploy/check-image.sh}, which an operator can
 * also run by hand. It builds the image (on stand-in base images from Debian where no registry
 * serves the real ones, and says so), then checks the user, paths, ports, JVM flags under a memory
 * limit, probes, HEALTHCHECK, refusals, the decision log on standard output, a mounted
 * configuration with SIGHUP, and {@code docker stop}'s clean exit. About three minutes.
 *
 * <p>Skipped, with the script's reason, where it cannot run (not root, no Docker engine to be had,
 * no base image); {@code -Degress.imageCheck=false} skips it on purpose.
 */
class ContainerImageTest {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));

  @Test
  void theImageBuildsRunsAndBehavesAsDocumented() throws Exception {
    assumeTrue(!"false".equals(System.getProperty("egress.imageCheck")),
        "-Degress.imageCheck=false: the container image check is skipped");
    assumeTrue(System.getProperty("os.name").startsWith("Linux"),
        "the container image check needs Linux: skipped");
    Path out = Files.createTempFile("check-image", ".log");
    try {
      Process p = new ProcessBuilder("bash", REPO.resolve("deploy/check-image.sh").toString())
          .redirectErrorStream(true).redirectOutput(out.toFile()).start();
      if (!p.waitFor(15, TimeUnit.MINUTES)) {
        p.destroy();
        p.waitFor(60, TimeUnit.SECONDS); // its trap stops the engine it started
        p.destroyForcibly();
        throw new AssertionError("deploy/check-image.sh did not finish in 15 minutes:\n"
            + Files.readString(out, StandardCharsets.UTF_8));
      }
      List<String> lines = Files.readAllLines(out, StandardCharsets.UTF_8);
      lines.forEach(l -> System.out.println("check-image: " + l));
      String all = String.join("\n", lines);
      if (p.exitValue() == 2) {
        abort("deploy/check-image.sh could not run here: " + all);
      }
      assertThat(p.exitValue()).as("deploy/check-image.sh's exit status; its output:\n%s", all)
          .isZero();
      assertThat(lines).as("every check it made passed").noneMatch(l -> l.contains(" FAIL "))
          .anyMatch(l -> l.contains("every check passed"));
    } finally {
      Files.deleteIfExists(out);
    }
  }
}
