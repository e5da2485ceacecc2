using System.Globalization;
using Broker.Security;

namespace Broker.Server;

/// <summary>
/// <c>Broker.Server hash-passcode [--iterations N] [passcode]</c>: prints the <see cref="PasscodeHasher"/> hash
/// to put in <c>Broker:Users:&lt;login&gt;</c>. Without a passcode argument it reads one line from standard
/// input (a prompt without echo on a terminal), which keeps the passcode out of the shell history.
/// </summary>
internal static class HashPasscodeCommand
{
    public const string Name = "hash-passcode";

    private const string Usage = "usage: Broker.Server hash-passcode [--iterations N] [passcode]   (no passcode: read from standard input)";

    /// <summary>Runs the command and returns the process exit code.</summary>
    public static int Run(string[] args) => Run(args, Console.In, Console.Out, Console.Error, interactive: !Console.IsInputRedirected);

    public static int Run(string[] args, TextReader input, TextWriter output, TextWriter error, bool interactive)
    {
        var iterations = PasscodeHasher.DefaultIterations;
        string? passcode = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--iterations" && i + 1 < args.Length &&
                int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out iterations) &&
                iterations >= PasscodeHasher.MinIterations && iterations <= PasscodeHasher.MaxIterations)
            {
                i++;
            }
            else if (args[i] is "-h" or "--help")
            {
                output.WriteLine(Usage);
                return 0;
            }
            else if (passcode is null && !args[i].StartsWith("--", StringComparison.Ordinal))
            {
                passcode = args[i];
            }
            else
            {
                error.WriteLine($"hash-passcode: unexpected '{(args[i].StartsWith("--", StringComparison.Ordinal) ? args[i] : "argument")}' (--iterations takes {PasscodeHasher.MinIterations} to {PasscodeHasher.MaxIterations})");
                error.WriteLine(Usage);
                return 2;
            }
        }

        passcode ??= interactive ? ReadHidden(error) : input.ReadLine();
        if (string.IsNullOrEmpty(passcode))
        {
            error.WriteLine("hash-passcode: no passcode given");
            error.WriteLine(Usage);
            return 2;
        }

        output.WriteLine(PasscodeHasher.Hash(passcode, iterations));
        return 0;
    }

    private static string ReadHidden(TextWriter prompt)
    {
        prompt.Write("Passcode: ");
        var text = new System.Text.StringBuilder();
        while (Console.ReadKey(intercept: true) is var key && key.Key != ConsoleKey.Enter)
        {
            if (key.Key == ConsoleKey.Backspace)
            {
                if (text.Length > 0)
                {
                    text.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                text.Append(key.KeyChar);
            }
        }

        prompt.WriteLine();
        return text.ToString();
    }
}
