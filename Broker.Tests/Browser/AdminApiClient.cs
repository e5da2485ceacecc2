using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Broker.Protocol;

namespace Broker.Tests.Browser;

/// <summary>The executable's HTTP API as curl would call it: a Bearer key, JSON answers.</summary>
internal sealed class AdminApiClient(Uri baseAddress, string? key) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(15) };

    public Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, string? authorization = null) =>
        SendAsync(method, path, json: null, authorization);

    /// <summary>POSTs <paramref name="json"/> (as it is, valid or not) with <c>Content-Type: application/json</c>, as <c>curl -d</c> would.</summary>
    public Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> PostAsync(string path, string json) =>
        SendAsync(HttpMethod.Post, path, json, authorization: null);

    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, string? json, string? authorization)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        }

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }
        else if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var body = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        return (response.StatusCode, body, response);
    }

    public async Task<JsonElement> GetOkAsync(string path)
    {
        var (status, body, _) = await SendAsync(HttpMethod.Get, path);
        return status == HttpStatusCode.OK ? body : throw new InvalidOperationException($"GET {path}: {(int)status} {body}");
    }

    /// <summary>Polls <c>GET /api/sessions</c> until <paramref name="condition"/> holds of its sessions (the server's state changes asynchronously).</summary>
    public async Task<JsonElement[]> WaitForSessionsAsync(string query, Func<JsonElement[], bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var sessions = (await GetOkAsync("/api/sessions" + query)).GetProperty("sessions").EnumerateArray().ToArray();
            if (condition(sessions))
            {
                return sessions;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what}: not seen in GET /api/sessions{query}: {string.Join(", ", sessions.Select(s => s.ToString()))}");
            }

            await Task.Delay(50);
        }
    }

    public void Dispose() => _http.Dispose();
}

internal static class StompTestClientExtensions
{
    /// <summary>The next frame with <paramref name="command"/>, skipping others (MESSAGEs still arriving).</summary>
    public static async Task<ReceivedFrame> ReceiveUntilAsync(this StompTestClient client, StompCommand command)
    {
        while (true)
        {
            var frame = await client.ReceiveAsync();
            if (frame.Command == command)
            {
                return frame;
            }
        }
    }
}
