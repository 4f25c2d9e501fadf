"""The words of the pages, in French and English: the contact's ``language`` picks one,
the workspace's ``language`` stands in when it is unknown."""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, Any]] = {
    "fr": {
        "bad_link_title": "Ce lien ne fonctionne pas",
        "csrf": "Ce formulaire a expiré ou ne vient pas de notre page : rechargez la page "
        "et recommencez.",
        "bad_link": "Ce lien est incomplet, a été modifié ou a expiré. Utilisez le lien "
        "du dernier message reçu.",
        "gone": "Ce lien ne correspond plus à aucun abonnement.",
        "unsubscribe_title": "Se désabonner",
        "unsubscribe_ask": {
            "email": "Ne plus recevoir nos emails à l'adresse {address} ?",
            "sms": "Ne plus recevoir nos SMS au {address} ?",
        },
        "unsubscribe_button": "Me désabonner",
        "unsubscribe_less": "Ou recevoir moins de messages",
        "unsubscribe_done": "C'est fait : vous ne recevrez plus nos messages sur ce canal.",
        "preferences_title": "Vos préférences",
        "frequency": "Fréquence",
        "normal": "Comme d'habitude",
        "monthly": "Moins souvent (un message par mois au plus)",
        "pause": "Faire une pause de trois mois",
        "paused_until": "En pause jusqu'au {date}.",
        "channels": "Canaux",
        "email": "Email",
        "sms": "SMS",
        "topics": "Sujets",
        "save": "Enregistrer",
        "saved": "Vos préférences sont enregistrées.",
        "survey_title": "Pourquoi avons-nous moins de nouvelles de vous ?",
        "too_many": "Trop de messages",
        "not_relevant": "Ce que vous envoyez ne me concerne pas",
        "bought_elsewhere": "J'achète ailleurs",
        "no_longer_needed": "Je n'en ai plus besoin",
        "other": "Autre raison",
        "other_text": "Dites-nous en plus (facultatif)",
        "send": "Envoyer",
        "thanks": "Merci pour votre réponse.",
        "you_wrote": "Vous avez écrit :",
        "choose_reason": "Choisissez une raison.",
        "too_long": "Votre réponse est trop longue.",
        "stay_title": "Rester parmi nous",
        "stay_ask": "Sans nouvelles de votre part, nous allons bientôt effacer vos données. "
        "Voulez-vous que nous les gardions et continuer à recevoir nos messages ?",
        "stay_button": "Oui, je reste",
        "stay_done": "C'est noté : nous gardons vos données. Merci !",
    },
    "en": {
        "bad_link_title": "This link does not work",
        "csrf": "This form has expired or did not come from our page: reload the page and "
        "try again.",
        "bad_link": "This link is incomplete, was altered or has expired. Use the link in "
        "the latest message you received.",
        "gone": "This link no longer matches any subscription.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_ask": {
            "email": "Stop receiving our emails at {address}?",
            "sms": "Stop receiving our text messages at {address}?",
        },
        "unsubscribe_button": "Unsubscribe",
        "unsubscribe_less": "Or receive fewer messages",
        "unsubscribe_done": "Done: you will no longer receive our messages on this channel.",
        "preferences_title": "Your preferences",
        "frequency": "Frequency",
        "normal": "As usual",
        "monthly": "Less often (one message a month at most)",
        "pause": "Pause for three months",
        "paused_until": "Paused until {date}.",
        "channels": "Channels",
        "email": "Email",
        "sms": "Text messages",
        "topics": "Topics",
        "save": "Save",
        "saved": "Your preferences are saved.",
        "survey_title": "Why do we hear less from you?",
        "too_many": "Too many messages",
        "not_relevant": "What you send is not relevant to me",
        "bought_elsewhere": "I buy elsewhere",
        "no_longer_needed": "I no longer need it",
        "other": "Another reason",
        "other_text": "Tell us more (optional)",
        "send": "Send",
        "thanks": "Thank you for your answer.",
        "you_wrote": "You wrote:",
        "choose_reason": "Choose a reason.",
        "too_long": "Your answer is too long.",
        "stay_title": "Stay with us",
        "stay_ask": "We have not heard from you for a long time and will soon erase your "
        "data. Do you want us to keep it, and keep receiving our messages?",
        "stay_button": "Yes, I want to stay",
        "stay_done": "Done: we keep your data. Thank you!",
    },
}


def language_of(contact_language: str | None, default: str) -> str:
    """``fr`` or ``en`` for a contact's language (``fr-CA``, ``EN``...), else ``default``."""
    if contact_language:
        short = contact_language.strip().lower()[:2]
        if short in TEXTS:
            return short
    return default
