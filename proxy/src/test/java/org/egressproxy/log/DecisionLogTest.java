package org.egressproxy.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DecisionLogTest {

  /**
   * An idle proxy's log writer sleeps longer and longer (up to {@code IDLE_NANOS}) instead of
   * waking 200 times a second; the first line after the idle spell is still written within one
   * such sleep. Counted as the writer thread's voluntary context switches (Linux /proc).
   */
  @Test
  void anIdleWriterWakesAFewTimesASecondAndStillWritesTheNextLine(@TempDir Path dir)
      throws Exception {
    assumeTrue(Files.isDirectory(Path.of("/proc/self/task")),
        "no /proc/self/task (not Linux): the writer's wake-ups cannot be counted; test skipped");
    Path file = dir.resolve("decisions.jsonl");
    try (DecisionLog log = DecisionLog.open(file.toString())) {
      log.decision(new Connection("explicit", "127.0.0.1:40000"));
      awaitLines(file, 1);
      Thread.sleep(1000); // the sleeps have grown to their longest
      long before = writerSwitches().orElseThrow();
      Thread.sleep(2000);
      long wakeUps = writerSwitches().orElseThrow() - before;
      assertThat(wakeUps).as("the idle writer's wake-ups over 2 s (200 a second before)")
          .isLessThan(40);
      long start = System.nanoTime();
      log.close(new Connection("explicit", "127.0.0.1:40001"));
      awaitLines(file, 2);
      assertThat((System.nanoTime() - start) / 1_000_000).as("ms for the line after the idle")
          .isLessThan(DecisionLog.IDLE_NANOS / 1_000_000 + 500);
      assertThat(log.written()).isEqualTo(2);
    }
  }

  /**
   * A connection has one close line even when two places learn of its end (its set-up handler
   * and its channel's end, when the client leaves as the upstream connects: ChaosTest found two).
   */
  @Test
  void aConnectionIsClosedInTheLogOnce(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("decisions.jsonl");
    try (DecisionLog log = DecisionLog.open(file.toString())) {
      Connection c = new Connection("explicit", "127.0.0.1:40000");
      Connection request = c.forRequest();
      log.close(c);
      log.close(c);
      log.close(request); // a request's record is its own
      awaitLines(file, 2);
      Thread.sleep(DecisionLog.IDLE_NANOS / 1_000_000 + 100); // a third line would be out now
      assertThat(Files.readAllLines(file)).hasSize(2);
    }
  }

  /**
   * Rolled files are kept ten in all, not ten a day (Log4j's {@code max} counts one day's
   * files): at a rollover, fifteen files from fifteen earlier days become the newest ten - the
   * one just rolled among them - and files that are not the log's are left alone.
   */
  @Test
  void aRolloverKeepsTheNewestTenRolledFilesWhateverTheirDays(@TempDir Path dir)
      throws Exception {
    Path file = dir.resolve("decisions.jsonl");
    long now = System.currentTimeMillis();
    for (int day = 1; day <= 15; day++) {
      Path old = dir.resolve("decisions.jsonl.2026-11-%02d.1.gz".formatted(day));
      Files.write(old, new byte[] {31, -117});
      Files.setLastModifiedTime(old, java.nio.file.attribute.FileTime.fromMillis(
          now - (16 - day) * 86_400_000L));
    }
    Path other = Files.writeString(dir.resolve("notes.2026-11-01.1.gz"), "not the log's");
    try (DecisionLog log = DecisionLog.open(file.toString())) {
      log.decision(new Connection("explicit", "127.0.0.1:40000"));
      awaitLines(file, 1);
      log.rollOver();
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (rolled(dir).size() != 10 && System.nanoTime() < deadline) {
        Thread.sleep(20); // compression and the deletion run on Log4j's own thread
      }
      assertThat(rolled(dir)).as("rolled files left").hasSize(10)
          .doesNotContain("decisions.jsonl.2026-11-01.1.gz", "decisions.jsonl.2026-11-06.1.gz")
          .contains("decisions.jsonl.2026-11-15.1.gz", "decisions.jsonl.2026-11-07.1.gz");
      assertThat(other).exists();
    }
  }

  private static java.util.List<String> rolled(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith("decisions.jsonl.") && n.endsWith(".gz")).sorted().toList();
    }
  }

  private static void awaitLines(Path file, int n) throws Exception {
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (lines(file) < n) {
      assertThat(System.nanoTime()).as("%d lines in %s within 10 s", n, file).isLessThan(deadline);
      Thread.sleep(10);
    }
  }

  private static long lines(Path file) throws IOException {
    return Files.exists(file) ? Files.readAllLines(file).size() : 0;
  }

  /** The "decision-log" thread's voluntary context switches so far. */
  private static OptionalLong writerSwitches() throws IOException {
    try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
      for (Path t : (Iterable<Path>) tasks::iterator) {
        try {
          if (!Files.readString(t.resolve("comm")).strip().equals("decision-log")) {
            continue;
          }
          for (String line : Files.readAllLines(t.resolve("status"))) {
            if (line.startsWith("voluntary_ctxt_switches:")) {
              return OptionalLong.of(Long.parseLong(line.substring(line.indexOf(':') + 1)
                  .strip()));
            }
          }
        } catch (IOException e) {
          // a thread that ended meanwhile
        }
      }
    }
    return OptionalLong.empty();
  }
}
