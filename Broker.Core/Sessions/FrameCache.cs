using Broker.Protocol;

namespace Broker.Sessions;

/// <summary>
/// The frames read loops decode into, lent per read instead of owned per session: an idle connection holds
/// no frame (a frame keeps its header buffers, about half a KiB). One frame per thread is kept; a loop that
/// awaits while holding one and resumes elsewhere simply makes or drops one.
/// </summary>
internal static class FrameCache
{
    [ThreadStatic]
    private static StompFrame? t_frame;

    public static StompFrame Rent()
    {
        var frame = t_frame;
        if (frame is null)
        {
            return new StompFrame();
        }

        t_frame = null;
        return frame;
    }

    public static void Return(StompFrame frame) => t_frame ??= frame;
}
