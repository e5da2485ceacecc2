using System.Text;

namespace Broker.Cluster;

/// <summary>
/// How a wildcard subscription is shipped between nodes. Redis PSUBSCRIBE takes glob patterns, where
/// <c>*</c> matches any run of characters, dots included, and nothing can say "one word": so a topic pattern
/// becomes the narrowest glob that matches <em>at least</em> every key the pattern matches, and the node
/// checks each message that arrives with the real matcher (<see cref="Routing.TopicPattern"/>). Literal words
/// are kept (escaped), a <c>*</c> word becomes <c>*</c>, and a <c>#</c> word becomes <c>*</c> together with its
/// neighbouring dots, because <c>#</c> may match no word at all (<c>a.#.c</c> matches <c>a.c</c>): so
/// <c>a.*.c</c> ships as <c>a.*.c</c> (the node drops <c>a.b.x.c</c>), <c>a.#</c> as <c>a*</c> (drops <c>ab</c>),
/// <c>#.c</c> as <c>*c</c>, and <c>#</c> as <c>*</c> (every topic message reaches that node).
/// </summary>
internal static class TopicGlob
{
    private static readonly System.Buffers.SearchValues<char> s_special = System.Buffers.SearchValues.Create("*?[]\\^");

    public static string From(string pattern)
    {
        var words = pattern.Split('.');
        var glob = new StringBuilder(pattern.Length + 4);
        var previousWasHash = false;
        for (var i = 0; i < words.Length; i++)
        {
            var word = words[i];
            if (word == "#")
            {
                // "#" and the dots around it (a dot goes only before a word that follows a non-"#"): one '*'.
                if (glob.Length == 0 || glob[^1] != '*')
                {
                    glob.Append('*');
                }

                previousWasHash = true;
                continue;
            }

            if (i > 0 && !previousWasHash)
            {
                glob.Append('.');
            }

            previousWasHash = false;
            if (word == "*")
            {
                glob.Append('*');
            }
            else
            {
                glob.Append(Escape(word));
            }
        }

        return glob.ToString();
    }

    /// <summary>Escapes the characters a Redis glob gives a meaning to.</summary>
    public static string Escape(string literal)
    {
        if (!literal.AsSpan().ContainsAny(s_special))
        {
            return literal;
        }

        var escaped = new StringBuilder(literal.Length + 8);
        foreach (var c in literal)
        {
            if (c is '*' or '?' or '[' or ']' or '\\' or '^')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }
}
