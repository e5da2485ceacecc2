namespace Broker.Application;

/// <summary>
/// Learns what happens to sessions (Spring's <c>SessionConnectEvent</c>, <c>SessionDisconnectEvent</c>...). Register any
/// number as singletons (<c>services.AddSingleton&lt;IStompSessionObserver, MyObserver&gt;()</c>); each event goes to each
/// observer once, in the order registered. Observers are called synchronously on the session's thread: keep them quick
/// and hand slow work elsewhere. An observer that throws is logged and does not affect the session or other observers.
/// Implement only the members you need.
/// </summary>
public interface IStompSessionObserver
{
    /// <summary>A new session is connected (its CONNECTED frame is on its way). A resume is <see cref="OnResumed"/> instead.</summary>
    void OnConnected(StompSessionInfo session)
    {
    }

    /// <summary>A durable session resumed with its token; <paramref name="recovered"/> is CONNECTED's <c>recovered</c>.</summary>
    void OnResumed(StompSessionInfo session, bool recovered)
    {
    }

    /// <summary>A SUBSCRIBE succeeded (subscriptions restored by a resume are in <see cref="OnResumed"/>'s session instead).</summary>
    void OnSubscribed(StompSubscriptionEvent subscription)
    {
    }

    /// <summary>An UNSUBSCRIBE ended a subscription.</summary>
    void OnUnsubscribed(StompSubscriptionEvent subscription)
    {
    }

    /// <summary>A connected session's connection closed. A durable session that <see cref="StompDisconnectReason.Dropped"/> may resume or expire later.</summary>
    void OnDisconnected(StompSessionInfo session, StompDisconnectReason reason)
    {
    }

    /// <summary>A durable session that dropped on this node was not resumed within its TTL (<c>Broker:Sessions:Ttl</c>); its token no longer resumes.</summary>
    void OnExpired(StompSessionInfo session)
    {
    }
}
