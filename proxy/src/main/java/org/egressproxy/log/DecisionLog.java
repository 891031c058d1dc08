package org.egressproxy.log;

import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.atomic.LongAdder;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.Appender;
import org.apache.logging.log4j.core.appender.ConsoleAppender;
import org.apache.logging.log4j.core.appender.RollingFileAppender;
import org.apache.logging.log4j.core.appender.rolling.CompositeTriggeringPolicy;
import org.apache.logging.log4j.core.appender.rolling.DefaultRolloverStrategy;
import org.apache.logging.log4j.core.appender.rolling.SizeBasedTriggeringPolicy;
import org.apache.logging.log4j.core.appender.rolling.TimeBasedTriggeringPolicy;
import org.apache.logging.log4j.core.appender.rolling.action.Action;
import org.apache.logging.log4j.core.appender.rolling.action.DeleteAction;
import org.apache.logging.log4j.core.appender.rolling.action.IfAccumulatedFileCount;
import org.apache.logging.log4j.core.appender.rolling.action.IfFileName;
import org.apache.logging.log4j.core.appender.rolling.action.PathCondition;
import org.apache.logging.log4j.core.config.DefaultConfiguration;
import org.apache.logging.log4j.core.impl.Log4jLogEvent;
import org.apache.logging.log4j.core.layout.PatternLayout;
import org.apache.logging.log4j.message.SimpleMessage;
import org.apache.logging.log4j.status.StatusData;
import org.apache.logging.log4j.status.StatusListener;
import org.apache.logging.log4j.status.StatusLogger;

/**
 * The decision log: JSON Lines, one {@code decision} event per decision and one {@code close}
 * event per allowed connection. Event loops only hand a finished line to a bounded queue; one
 * writer thread appends through Log4j2 (a rolling file: 100 MB or daily, gzipped, the newest 10
 * kept whatever their days; or the console for "-"). A full queue, a full disk or a read-only
 * file never blocks traffic: the line
 * is dropped and counted. Log4j buffers what it writes, so a line counts as written only once a
 * flush after it succeeded; when a write or flush fails, every line since the last good flush
 * counts as dropped. A file that cannot be opened at all (a read-only filesystem) gives a log
 * that drops and counts every line, and says why in {@link #problem()}.
 */
public final class DecisionLog implements AutoCloseable {
  static final int QUEUE = 65_536;
  /** Rolled files kept: the newest ten, whatever their days. */
  static final int KEPT = 10;
  /** How long the writer sleeps when it finds the queue empty after writing. */
  static final long BATCH_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
  /**
   * The longest it sleeps: each sleep that found nothing doubles the next, up to this, so an
   * idle proxy's writer wakes a few times a second rather than 200. A line waits at most this
   * long; the queue holds far more than the proxy makes in that time.
   */
  static final long IDLE_NANOS = TimeUnit.MILLISECONDS.toNanos(200);

  private final BlockingQueue<String> queue = new ArrayBlockingQueue<>(QUEUE);
  private final LongAdder dropped = new LongAdder();
  private final LongAdder written = new LongAdder();
  private final Appender appender;
  private final Thread writer;
  private final Clock clock;
  private final String problem;
  private volatile boolean closing;

  private DecisionLog(Appender appender, Clock clock, String problem) {
    this.appender = appender;
    this.clock = clock;
    this.problem = problem;
    this.writer = appender == null ? null : new Thread(this::drain, "decision-log");
    if (writer != null) {
      writer.setDaemon(true);
      writer.start();
    }
  }

  static {
    // Log4j's own messages at run time (a rollover that failed, say) go to standard error,
    // not to standard output, where the decision log itself may be
    StatusLogger.getLogger().getFallbackListener().setStream(System.err);
  }

  /** A log that writes nothing (no {@code decisionLog.path}). */
  public static DecisionLog disabled() {
    return new DecisionLog(null, Clock.systemUTC(), null);
  }

  /** A log to {@code path}, or to standard output for "-". */
  public static DecisionLog open(String path) {
    Appender a;
    PatternLayout layout = PatternLayout.newBuilder().withPattern("%m%n")
        .withCharset(java.nio.charset.StandardCharsets.UTF_8).build(); // whatever the locale
    if ("-".equals(path)) {
      a = ConsoleAppender.newBuilder().setName("decisions").setLayout(layout)
          .setIgnoreExceptions(false).build();
    } else {
      // Log4j reports why it cannot open a file to its status logger (by default a stack trace
      // on standard output): taken here instead, into the one-line warning below.
      StatusLogger status = StatusLogger.getLogger();
      StringBuilder why = new StringBuilder();
      StatusListener capture = new StatusListener() {
        @Override
        public void log(StatusData data) {
          if (why.length() == 0 && data.getLevel().isMoreSpecificThan(Level.ERROR)) {
            Throwable t = data.getThrowable();
            why.append(t != null && t.getMessage() != null ? t.getMessage()
                : data.getMessage().getFormattedMessage());
          }
        }

        @Override
        public Level getStatusLevel() {
          return Level.ERROR;
        }

        @Override
        public void close() {}
      };
      Level fallback = status.getFallbackListener().getStatusLevel();
      status.getFallbackListener().setLevel(Level.OFF);
      status.registerListener(capture);
      try {
        a = RollingFileAppender.newBuilder()
            .setName("decisions")
            .withFileName(path)
            .withFilePattern(path + ".%d{yyyy-MM-dd}.%i.gz")
            .withPolicy(CompositeTriggeringPolicy.createPolicy(
                SizeBasedTriggeringPolicy.createPolicy("100MB"),
                TimeBasedTriggeringPolicy.newBuilder().build()))
            .withStrategy(DefaultRolloverStrategy.newBuilder().withMax("10")
                .withCustomActions(new Action[] {keepNewest(path, KEPT)})
                .withConfig(new DefaultConfiguration()).build())
            .withImmediateFlush(false)
            .setBufferedIo(true)
            .setLayout(layout)
            .setIgnoreExceptions(false)
            .build();
      } catch (RuntimeException e) { // Log4j's manager factory: a read-only directory, say
        a = null;
        if (why.length() == 0) {
          why.append(e.getMessage());
        }
      } finally {
        status.removeListener(capture);
        status.getFallbackListener().setLevel(fallback);
      }
      if (a == null) {
        return new DecisionLog(null, Clock.systemUTC(), "cannot open the decision log " + path
            + (why.length() > 0 ? " (" + why + ")" : "") + "; every line is dropped and"
            + " counted in egress_decision_log_dropped_total");
      }
    }
    a.start();
    return new DecisionLog(a, Clock.systemUTC(), null);
  }

  /**
   * At each rollover, deletes all but the newest {@code kept} rolled files of {@code path}:
   * Log4j's own {@code max} counts the files of one day only, so a file per day would pile up.
   */
  private static Action keepNewest(String path, int kept) {
    java.nio.file.Path file = java.nio.file.Path.of(path).toAbsolutePath();
    String rolled = java.util.regex.Pattern.quote(file.getFileName().toString())
        + "\\.\\d{4}-\\d{2}-\\d{2}\\.\\d+\\.gz";
    return DeleteAction.createDeleteAction(file.getParent().toString(), false, 1, false, null,
        new PathCondition[] {IfFileName.createNameCondition(null, rolled,
            IfAccumulatedFileCount.createFileCountCondition(kept))},
        null, new DefaultConfiguration());
  }

  /** Rolls the file over now, as a size or a new day would (tests). */
  void rollOver() {
    if (appender instanceof RollingFileAppender r) {
      r.getManager().rollover();
    }
  }

  /** Why nothing can be written, or {@code null}. */
  public String problem() {
    return problem;
  }

  public void decision(Connection c) {
    offer(c, "decision");
  }

  /** The close line of an allowed connection or exchange; once, however often it is asked. */
  public void close(Connection c) {
    if (c.firstClose()) {
      offer(c, "close");
    }
  }

  private void offer(Connection c, String event) {
    if (appender == null) {
      if (problem != null) {
        dropped.increment(); // the file could not be opened
      }
      return;
    }
    if (closing || !queue.offer(c.toJson(event, clock.instant()))) {
      dropped.increment();
    }
  }

  /** Lines that could not be written (queue full, write failed). */
  public long dropped() {
    return dropped.sum();
  }

  public long written() {
    return written.sum();
  }

  private void drain() {
    List<String> batch = new ArrayList<>(256);
    long sleep = BATCH_NANOS;
    while (true) {
      // The writer looks at the queue every few milliseconds rather than being woken for each
      // line: a wake-up (and a write) per line cost the event loops more than the line.
      String first = queue.poll();
      if (first == null) {
        if (closing) {
          return;
        }
        LockSupport.parkNanos(sleep);
        sleep = Math.min(sleep * 2, IDLE_NANOS);
        if (Thread.interrupted()) {
          return;
        }
        continue;
      }
      sleep = BATCH_NANOS;
      batch.add(first);
      queue.drainTo(batch, 1023);
      int pending = 0; // appended since the last flush that worked
      for (String line : batch) {
        try {
          appender.append(Log4jLogEvent.newBuilder().setMessage(new SimpleMessage(line)).build());
          pending++;
        } catch (RuntimeException e) { // full disk, read-only file, closed stream
          dropped.add(pending + 1L); // a failed write loses what the buffer held too
          pending = 0;
        }
      }
      batch.clear();
      if (flush()) {
        written.add(pending);
      } else {
        dropped.add(pending);
      }
    }
  }

  /** Writes out what Log4j buffered; false when that failed. */
  private boolean flush() {
    try {
      if (appender instanceof RollingFileAppender r) {
        r.getManager().flush();
      }
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** Writes what is queued (bounded wait), then stops. */
  @Override
  public void close() {
    if (writer == null) {
      return;
    }
    LockSupport.unpark(writer); // it may be in its longest sleep
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    while (!queue.isEmpty() && System.nanoTime() < deadline) {
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    closing = true;
    LockSupport.unpark(writer);
    try {
      writer.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    dropped.add(queue.size());
    queue.clear();
    flush();
    appender.stop();
  }
}
