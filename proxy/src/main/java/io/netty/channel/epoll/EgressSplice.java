package io.netty.channel.epoll;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import java.io.IOException;
import java.lang.reflect.Field;
import java.util.Queue;

/**
 * What egress-proxy needs around Netty's {@link AbstractEpollStreamChannel#spliceTo} to splice a
 * relay direction (socket to pipe to socket, in the kernel) without losing a byte or a count. It
 * lives in Netty's package for the two things {@code spliceTo} leaves out:
 *
 * <ul>
 *   <li><b>How far a splice got.</b> {@code spliceTo(peer, len)} completes its future when all
 *       {@code len} bytes went through; a stream that ends (or a connection that closes) part way
 *       says nothing of the part. The splice's queued task counts its remaining length down as
 *       it goes: {@link #start} hands that task back, {@link #remaining} reads it, at any time
 *       (also after the channel closed). Netty keeps the queue private: it is read by
 *       reflection, once per splice started; where that fails, {@link #AVAILABLE} is false and
 *       the relay copies as it always did.
 *   <li><b>The bytes after the FIN.</b> When the peer's FIN is seen (EPOLLRDHUP) during a splice,
 *       Netty shuts the input at once, though the socket may still hold up to a receive buffer
 *       of data that one splice call (at most a read's size, at most what the pipe takes) did not
 *       move: nothing reads them after that. {@link #drain} reads them (Linux keeps a socket's
 *       queued data readable after {@code shutdown(SHUT_RD)}), to be relayed before the FIN.
 * </ul>
 *
 * <p>Remove it when Netty's splice reports progress and reads to the end before shutting input.
 */
public final class EgressSplice {
  private static final Field QUEUE = queueField();

  /** Whether splicing can be offered at all (the epoll transport's internals are as expected). */
  public static final boolean AVAILABLE = QUEUE != null;

  private EgressSplice() {}

  private static Field queueField() {
    try {
      Field f = AbstractEpollStreamChannel.class.getDeclaredField("spliceQueue");
      f.setAccessible(true);
      return Queue.class.isAssignableFrom(f.getType()) ? f : null;
    } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
      return null; // another Netty, or no epoll classes: the relay copies
    }
  }

  /** Whether {@code from} can splice to {@code to}: both epoll sockets on one event loop. */
  public static boolean possible(Channel from, Channel to) {
    return AVAILABLE && from instanceof AbstractEpollStreamChannel
        && to instanceof AbstractEpollStreamChannel && from.eventLoop() == to.eventLoop()
        && from.isActive() && to.isActive();
  }

  /**
   * Starts splicing {@code len} bytes from {@code from} to {@code to} (see {@link #possible});
   * {@code from} must have no other splice pending. On {@code from}'s event loop.
   *
   * @return the splice's progress, for {@link #remaining}; its {@link Progress#future()}
   *     completes when all {@code len} bytes were written to {@code to}, and fails when either
   *     channel closes first
   */
  public static Progress start(Channel from, Channel to, int len) {
    AbstractEpollStreamChannel src = (AbstractEpollStreamChannel) from;
    ChannelFuture future = src.spliceTo((AbstractEpollStreamChannel) to, len);
    return new Progress(src, future, task(src, future), len);
  }

  /** The queued task of the splice {@code future} stands for, if it is at the queue's head. */
  private static AbstractEpollStreamChannel.SpliceInTask task(AbstractEpollStreamChannel src,
      ChannelFuture future) {
    try {
      Queue<?> queue = (Queue<?>) QUEUE.get(src);
      if (queue != null && queue.peek() instanceof AbstractEpollStreamChannel.SpliceInTask t
          && t.promise == future) {
        return t;
      }
    } catch (IllegalAccessException e) {
      // cannot happen: the field was made accessible
    }
    return null;
  }

  /** One {@link #start}ed splice. */
  public static final class Progress {
    private final AbstractEpollStreamChannel src;
    private final ChannelFuture future;
    private AbstractEpollStreamChannel.SpliceInTask task;
    private final int len;

    Progress(AbstractEpollStreamChannel src, ChannelFuture future,
        AbstractEpollStreamChannel.SpliceInTask task, int len) {
      this.src = src;
      this.future = future;
      this.task = task;
      this.len = len;
    }

    public ChannelFuture future() {
      return future;
    }

    /**
     * Bytes this splice has taken from its source so far (into the pipe, or on to the peer).
     * On the event loop.
     */
    public int moved() {
      if (task == null && !future.isDone()) {
        task = task(src, future); // started behind one that was about to leave the queue
      }
      if (task == null) {
        // Not found: the splice failed before it was queued (a channel closed), or it was not
        // at the queue's head (start() is never called with another splice pending).
        return future.isSuccess() ? len : 0;
      }
      return len - task.len;
    }
  }

  /**
   * After {@code ch}'s input was shut during a splice: reads what its socket still holds and
   * writes it, in order, to {@code to} (not flushed). Bounded by the socket's receive buffer
   * (and at most {@code maxBytes}). On the event loop.
   *
   * @return the bytes read
   */
  public static long drain(Channel ch, Channel to, long maxBytes) throws IOException {
    if (!(ch instanceof AbstractEpollChannel epoll) || !epoll.isOpen()) {
      return 0;
    }
    long total = 0;
    while (total < maxBytes) {
      ByteBuf buf = ch.alloc().directBuffer(64 * 1024);
      int n;
      try {
        if (buf.hasMemoryAddress()) {
          n = epoll.socket.readAddress(buf.memoryAddress(), 0, buf.capacity());
        } else {
          java.nio.ByteBuffer nio = buf.internalNioBuffer(0, buf.capacity());
          n = epoll.socket.read(nio, nio.position(), nio.limit());
        }
      } catch (IOException | RuntimeException e) {
        buf.release();
        throw e;
      }
      if (n <= 0) { // 0: nothing more queued; -1: the end
        buf.release();
        break;
      }
      buf.writerIndex(n);
      total += n;
      to.write(buf, to.voidPromise());
    }
    return total;
  }
}
